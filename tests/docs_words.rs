//! The word reference in docs/ against the words themselves: every word `.i` prints is
//! documented, every documented word exists, each section quotes the word's help text, and
//! every example marked `rpcl` in docs/rpcl.md and docs/words-engine.md prints exactly what the
//! page shows (the engine's examples against the in-test engine of tests/testengine).

mod testengine;

use ethertap::rpcl::Vm;
use std::collections::BTreeSet;

const DOCS: [&str; 3] = ["docs/rpcl.md", "docs/words-engine.md", "docs/pqueue.md"];

fn read_doc(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// A VM with every word a user can meet: core, library, engine (unavailable stubs with the
/// same names and help) and the packet-queue words (they attach lazily, so nothing is created).
fn full_vm() -> Vm {
    let mut vm = Vm::new();
    ethertap::ixdp::words::register_unavailable_words(&mut vm);
    ethertap::pqueue::register_words(&mut vm, "docs-test.unused");
    vm
}

fn eval(vm: &mut Vm, line: &str) -> String {
    let mut out = Vec::new();
    let result = vm.eval_line(line, &mut out);
    let mut text = String::from_utf8(out).expect("UTF-8 output");
    if let Err(e) = result {
        text.push_str(&format!("{e}\n"));
    }
    text
}

/// Names as `.i` prints them: the name, padded to 32 columns, one space, the help.
fn dot_i_words(vm: &mut Vm) -> Vec<(String, String)> {
    eval(vm, ".i")
        .lines()
        .map(|l| {
            assert!(l.len() > 33, "a .i line has a name and a help: {l:?}");
            (l[..32].trim_end().to_string(), l[33..].to_string())
        })
        .collect()
}

/// Word sections: headings whose whole text is one code span, e.g. "#### `dup`".
fn documented_words(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|l| {
            let rest = l.trim_start_matches('#');
            if rest.len() == l.len() {
                return None;
            }
            let name = rest.strip_prefix(" `")?.strip_suffix('`')?;
            Some(name.to_string())
        })
        .collect()
}

#[test]
fn the_docs_list_exactly_the_words_dot_i_prints() {
    let listed: BTreeSet<String> = dot_i_words(&mut full_vm())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut documented = BTreeSet::new();
    for path in DOCS {
        for name in documented_words(&read_doc(path)) {
            assert!(
                documented.insert(name.clone()),
                "{name} is documented twice ({path})"
            );
        }
    }
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&listed).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "words .i prints but docs/ does not document: {undocumented:?}\n\
         words docs/ documents but .i does not print: {unknown:?}"
    );
    assert!(
        listed.len() > 130,
        "the full VM has all words: {}",
        listed.len()
    );
}

#[test]
fn each_word_section_quotes_the_help_that_dot_i_prints() {
    let words = dot_i_words(&mut full_vm());
    let docs: Vec<(&str, String)> = DOCS.iter().map(|p| (*p, read_doc(p))).collect();
    for (name, help) in words {
        let (path, doc) = docs
            .iter()
            .find(|(_, d)| documented_words(d).contains(&name))
            .unwrap_or_else(|| panic!("{name} is not documented"));
        let heading = doc
            .lines()
            .position(|l| l.trim_start_matches('#').strip_prefix(" `") == Some(&format!("{name}`")))
            .expect("heading found above");
        let section: String = doc
            .lines()
            .skip(heading + 1)
            .take_while(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            section.contains(&format!("Help: `{help}`")),
            "{path}: the section of {name} quotes its help `{help}`"
        );
        assert!(help.ends_with(')'), "{name}: help ends in its stack effect");
    }
}

/// Blocks fenced as ```rpcl: "ok LINE" input lines, each followed by its output.
fn rpcl_examples(doc: &str) -> Vec<(usize, Vec<(String, String)>)> {
    let mut blocks = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, l)) = lines.next() {
        if l != "```rpcl" {
            continue;
        }
        let mut steps: Vec<(String, String)> = Vec::new();
        for (_, l) in lines.by_ref() {
            if l == "```" {
                break;
            }
            match l.strip_prefix("ok ") {
                Some(input) => steps.push((input.to_string(), String::new())),
                None => {
                    let (_, out) = steps
                        .last_mut()
                        .unwrap_or_else(|| panic!("line {}: output before input", n + 1));
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        blocks.push((n + 1, steps));
    }
    blocks
}

/// Runs every `rpcl` block of `path`, each in a fresh VM from `vm`, and compares each line's
/// output with the page.
fn check_examples(path: &str, at_least: usize, vm: impl Fn() -> Vm) {
    let doc = read_doc(path);
    let blocks = rpcl_examples(&doc);
    assert!(
        blocks.len() >= at_least,
        "{path}: examples found: {}",
        blocks.len()
    );
    for (line, steps) in blocks {
        let mut vm = vm();
        for (input, expected) in steps {
            assert_eq!(eval(&mut vm, &input), expected, "{path}:{line}: `{input}`");
        }
    }
}

#[test]
fn the_rpcl_examples_print_what_the_reference_shows() {
    check_examples("docs/rpcl.md", 90, full_vm);
}

/// The words whose section has an example fenced as `rpcl`.
fn words_with_checked_examples(doc: &str) -> BTreeSet<String> {
    let mut current = None;
    let mut in_checked = false;
    let mut checked = BTreeSet::new();
    for l in doc.lines() {
        if let Some(name) = documented_words(l).pop() {
            current = Some(name);
        } else if l == "```rpcl" {
            in_checked = true;
            checked.extend(current.clone());
        } else if l == "```" && in_checked {
            in_checked = false;
        }
    }
    checked
}

#[test]
fn the_engine_examples_print_what_the_reference_shows() {
    check_examples("docs/words-engine.md", 25, || {
        testengine::vm_for(&testengine::engine_with(&testengine::DOCS, 1))
    });
}

#[test]
fn every_engine_word_but_the_statistics_has_a_checked_example() {
    let doc = read_doc("docs/words-engine.md");
    let checked = words_with_checked_examples(&doc);
    // Their examples show counters of real traffic, which the in-test engine does not have
    // (if.stats.json's example is compared exactly in tests/policy_words.rs, with counters
    // the test sets).
    let statistics = [
        "if.stats",
        "if.stats.json",
        "if.qstats",
        "if.mac.show",
        "if.etype.show",
        "if.stats.reset",
    ];
    for w in ethertap::ixdp::words::all_words() {
        assert!(
            checked.contains(w.name) || statistics.contains(&w.name),
            "docs/words-engine.md: {} has no checked example",
            w.name
        );
    }
}

#[test]
fn every_core_and_library_word_has_a_checked_example() {
    let doc = read_doc("docs/rpcl.md");
    let checked = words_with_checked_examples(&doc);
    // Words whose output differs on every run or that need a file or arguments.
    let unchecked: BTreeSet<String> = [".d", "random32", "random64", "time", "ms"]
        .into_iter()
        .map(String::from)
        .collect();
    for name in documented_words(&doc) {
        assert!(
            checked.contains(&name) || unchecked.contains(&name),
            "docs/rpcl.md: {name} has no checked example"
        );
    }
}

#[test]
fn the_readme_word_list_is_what_dot_i_prints() {
    let readme = read_doc("README.md");
    let start = readme
        .find("<summary>all words")
        .expect("README.md has the word list");
    let block = readme[start..]
        .split("```\n")
        .nth(1)
        .expect("the word list is a code block");
    let mut vm = full_vm();
    assert_eq!(
        block,
        eval(&mut vm, ".i"),
        "README.md's word list is the output of `ethertap eval '.i'`"
    );
}
