//! `mapaudit check REPORT`: gate on a report written by `record --json`.
//! Needs no privileges: it reads a file and applies the gate.

use crate::config::Check;
use crate::output::formats::Outputs;
use crate::output::gate;

pub fn run(a: Check) -> anyhow::Result<i32> {
    // Destinations are checked before any work, as `record` does.
    let outputs = Outputs::prepare(&a.share, None)?;
    let rep = gate::read_report(&a.report)?;
    outputs.write(&rep, &a.gate, a.share.source_root.as_deref())?;
    let failures = gate::evaluate(&rep, &a.gate);
    if a.gate.is_empty() && outputs.is_empty() {
        eprintln!("mapaudit: {} is a valid report ({} findings); give --fail-on or a threshold to gate on it", a.report.display(), rep.findings.len());
    }
    Ok(gate::conclude(&failures))
}
