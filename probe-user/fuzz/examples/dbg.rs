fn main() {
    for p in std::env::args().skip(1) {
        let d = std::fs::read(&p).unwrap();
        let r = mapaudit_fuzz::harness::dwarf_binary(&d);
        println!("{p}: {:?}", r.as_ref().map(|b| (b.has_dwarf(), b.runtime_offsets())));
    }
}
