//! What leaves mapaudit after a recording: the JSON report (`report`), the
//! gate that turns a report into an exit code (`gate`), and the summary
//! printed on stderr (`summary`), and the same report for CI systems and
//! people (`formats`: SARIF, JUnit, Markdown, HTML).

pub mod formats;
pub mod gate;
pub mod metrics;
pub mod health;
pub mod report;
pub mod summary;
