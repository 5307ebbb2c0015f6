//! Prints, per hook and transport, how many signatures are evaluated on every inspection and
//! how many prefilter patterns there are.
use palisade_rules::sig::SigSetBuilder;

fn main() {
    let mut b = SigSetBuilder::default();
    for a in std::env::args().skip(1) {
        b.add_path(std::path::Path::new(&a)).expect("readable");
    }
    let set = b.build();
    for (slot, always, pats) in set.index_stats() {
        if always + pats > 0 {
            println!(
                "hook {} class {}: always {always}, patterns {pats}",
                slot / 4,
                slot % 4
            );
        }
    }
    for (slot, buf, dir, n, min, short) in set.pattern_stats() {
        println!(
            "slot {slot} {} dir {dir}: {n} patterns, shortest {min}, {short} under 4 bytes",
            buf.name()
        );
    }
}
