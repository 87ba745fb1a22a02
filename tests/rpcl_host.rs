//! The host API (INTERFACES.md §1) as the engine and the packet queue use it.

use ethertap::rpcl::{Subtype, Vm, WordError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn eval(vm: &mut Vm, line: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let r = vm.eval_line(line, &mut out);
    let text = String::from_utf8(out).unwrap();
    r.map(|_| text).map_err(|e| e.to_string())
}

fn engine_like_vm(enabled: Arc<AtomicUsize>) -> Vm {
    let mut vm = Vm::new();
    vm.register(
        "tap.rx.enable",
        "tap frames received on an interface ( interface - )",
        move |cx| {
            let i = cx.pop_int()?;
            if !(0..2).contains(&i) {
                return Err(WordError::new(format!("{i} is not an interface (0..1)")));
            }
            enabled.fetch_or(1 << i, Ordering::Relaxed);
            writeln!(cx.out(), "rx tap enabled on {i}").unwrap();
            Ok(())
        },
    );
    vm.register(
        "tap.hash.insert",
        "add a MAC to the TAP machash ( mac - )",
        |cx| {
            let mac = cx.pop_mac()?;
            cx.push_data(Subtype::Mac, mac.0.to_vec())
        },
    );
    vm.register(
        "tap.queue.get",
        "take the next packet from the pqueue ( - packet )",
        |cx| cx.push_data(Subtype::Generic, Vec::new()),
    );
    vm.register(
        "host.sum",
        "add two numbers the host way ( a b - sum )",
        |cx| {
            let b = cx.pop_int()?;
            let a = cx.pop_int()?;
            cx.push_int(a + b)
        },
    );
    vm.register("host.name", "greet ( name - greeting )", |cx| {
        let name = cx.pop_str()?;
        cx.push_str(&format!("hello {name}"))
    });
    vm.register("host.wait", "wait until interrupted ( - )", |cx| {
        while !cx.interrupted() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(WordError::new("interrupted while waiting"))
    });
    vm
}

#[test]
fn host_words_run_print_and_report_errors_in_spec_form() {
    let enabled = Arc::new(AtomicUsize::new(0));
    let mut vm = engine_like_vm(enabled.clone());
    assert_eq!(
        eval(&mut vm, "1 tap.rx.enable").unwrap(),
        "rx tap enabled on 1\n"
    );
    assert_eq!(enabled.load(Ordering::Relaxed), 2);
    assert_eq!(
        eval(&mut vm, "7 tap.rx.enable"),
        Err("error: tap.rx.enable: 7 is not an interface (0..1)".into())
    );
    // An error loses nothing: the operand is back on the stack.
    assert_eq!(eval(&mut vm, ".s .cs").unwrap(), " 0 [7]\n");
    assert_eq!(
        eval(&mut vm, "abc tap.rx.enable"),
        Err("error: tap.rx.enable: \"abc\" is not a number".into())
    );
    assert_eq!(eval(&mut vm, ".s .cs").unwrap(), " 0 [abc]\n");
    assert_eq!(
        eval(&mut vm, "tap.rx.enable"),
        Err("error: pop: stack underflow".into())
    );
    // Two pops, the second fails: both items are restored in order.
    assert_eq!(
        eval(&mut vm, "x 5 host.sum"),
        Err("error: host.sum: \"x\" is not a number".into())
    );
    assert_eq!(eval(&mut vm, ".s .cs").unwrap(), " 0 [x]\n 1 [5]\n");
    assert_eq!(eval(&mut vm, "2 0x10 host.sum .").unwrap(), "18\n");
    assert_eq!(eval(&mut vm, "\"you\" host.name .").unwrap(), "hello you\n");
    assert_eq!(
        eval(&mut vm, "\"AA:bb:CC:dd:EE:ff\" tap.hash.insert .").unwrap(),
        "aa:bb:cc:dd:ee:ff\n"
    );
    assert_eq!(
        eval(
            &mut vm,
            "\"aa:bb:cc:dd:ee:ff\" str->mac_t tap.hash.insert .s .cs"
        )
        .unwrap(),
        " 0 [mac_t aa:bb:cc:dd:ee:ff]\n"
    );
    assert_eq!(
        eval(&mut vm, "\"zz:00\" tap.hash.insert"),
        Err("error: tap.hash.insert: \"zz:00\" is not a MAC address".into())
    );
    vm.eval_line(".cs", &mut Vec::new()).unwrap();
    // (ref) tap.queue.get . on an empty queue
    assert_eq!(
        eval(&mut vm, "tap.queue.get .").unwrap(),
        "0000                                                    |                |\n"
    );
    // In a script the error carries the position of the token.
    let mut out = Vec::new();
    let e = vm
        .run_file(
            "conf.rpcl",
            "0 tap.rx.enable\n  9 tap.rx.enable\n",
            &mut out,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "conf.rpcl:2:5: error: tap.rx.enable: 9 is not an interface (0..1)"
    );
    // The same error as fields, for callers that place or filter it themselves.
    let at = e.at.as_ref().expect("a script error has a position");
    assert_eq!((&*at.file, at.line, at.col), ("conf.rpcl", 2, 5));
    assert_eq!(e.word, "tap.rx.enable");
    assert_eq!(e.cause.to_string(), "9 is not an interface (0..1)");
    // Inside a compound word: the innermost word and the caller's position.
    vm.eval_line(".cs \"tap.rx.enable\" en !!", &mut Vec::new())
        .unwrap();
    let e = vm
        .run_file("c.rpcl", "\n 5 en", &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.rpcl:2:4: error: tap.rx.enable: 5 is not an interface (0..1)"
    );
}

#[test]
fn host_words_are_listed_with_help_and_immutable() {
    let mut vm = engine_like_vm(Arc::new(AtomicUsize::new(0)));
    assert!(vm.word_names().contains(&"tap.rx.enable".to_string()));
    assert_eq!(
        vm.help("tap.rx.enable"),
        Some("tap frames received on an interface ( interface - )")
    );
    assert_eq!(vm.help("dup"), Some("duplicate the top item ( a - a a )"));
    assert_eq!(
        vm.help("nip"),
        Some("drop the item below the top ( a b - b )")
    );
    assert_eq!(vm.help("no-such-word"), None);
    assert_eq!(
        eval(&mut vm, "\"tap.\" .i").unwrap(),
        format!(
            "{:<32} add a MAC to the TAP machash ( mac - )\n\
             {:<32} take the next packet from the pqueue ( - packet )\n\
             {:<32} tap frames received on an interface ( interface - )\n",
            "tap.hash.insert", "tap.queue.get", "tap.rx.enable"
        )
    );
    assert_eq!(
        eval(&mut vm, "\"tap.rx.enable\" @ .").unwrap(),
        "tap frames received on an interface ( interface - )\n"
    );
    assert_eq!(
        eval(&mut vm, "\"1\" \"tap.rx.enable\" !!"),
        Err("error: !!: \"tap.rx.enable\" is a built-in word and cannot be changed".into())
    );
    // Every built-in's help is one line ending in a stack effect.
    for name in vm.word_names() {
        let help = vm
            .help(&name)
            .unwrap_or_else(|| panic!("{name} has no help"));
        assert!(!help.contains('\n'), "{name}: {help}");
        assert!(
            help.ends_with(')') && help.contains(" ( ") && help.contains(" - "),
            "{name}: help does not end in a stack effect: {help}"
        );
    }
}

#[test]
fn variables_and_platform() {
    let mut vm = Vm::new();
    vm.set_var("version.ethertap", "9.9.9");
    assert_eq!(
        eval(
            &mut vm,
            "\"version.ethertap\" @ . \"rpcl.version\" @ . \"rpcl.platform\" @ ."
        )
        .unwrap(),
        format!(
            "9.9.9\n{}\n{}-{}\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS
        )
    );
    vm.set_args(vec!["a".into(), "b c".into()]);
    assert_eq!(eval(&mut vm, "argc . 1 arg .").unwrap(), "2\nb c\n");
}

#[test]
fn colour_only_when_asked() {
    let mut vm = Vm::new();
    vm.set_color(true);
    assert_eq!(
        eval(&mut vm, "\"10.1.1.1\" str->ip_t .").unwrap(),
        "\x1b[4m::ffff:10.1.1.1\x1b[0m\n"
    );
    assert_eq!(eval(&mut vm, "\"plain\" .").unwrap(), "plain\n");
    let d = eval(&mut vm, "1 testvar ! .d").unwrap();
    assert!(
        d.contains(&format!("\x1b[34m{:<32}\x1b[0m 1\n", "testvar")),
        "{d:?}"
    );
    assert!(d.contains(&format!("{:<32} ", "rpcl.version")), "{d:?}");
    vm.set_color(false);
    assert_eq!(
        eval(&mut vm, "\"10.1.1.1\" str->ip_t .").unwrap(),
        "::ffff:10.1.1.1\n"
    );
}

#[test]
fn interrupts_stop_loops_waits_and_sleeps_and_the_vm_moves_between_threads() {
    let mut vm = engine_like_vm(Arc::new(AtomicUsize::new(0)));
    let flag = vm.interrupt_handle();
    for (line, word) in [
        ("begin 0 until", "until"),
        ("host.wait", "host.wait"),
        ("100000 ms", "ms"),
        ("\"x\" x !! x", "x"),
    ] {
        let f = flag.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            f.store(true, Ordering::Relaxed);
        });
        let start = Instant::now();
        // The VM is Send: run it on another thread, as the daemon's control thread does.
        let line = line.to_string();
        let (vm2, r) = std::thread::spawn(move || {
            let r = eval(&mut vm, &line);
            (vm, r)
        })
        .join()
        .unwrap();
        vm = vm2;
        stopper.join().unwrap();
        let e = r.unwrap_err();
        if word == "x" {
            // Recursion ends at the depth limit before the interrupt.
            assert_eq!(e, "error: x: execution depth limit (256) exceeded");
            continue;
        }
        assert!(e.starts_with(&format!("error: {word}: interrupted")), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        // The next line runs normally.
        assert_eq!(eval(&mut vm, ".cs 1 .").unwrap(), "1\n");
    }
}

#[test]
fn budget_stops_runaway_lines() {
    let mut vm = Vm::new();
    vm.set_budget(1000);
    assert_eq!(
        eval(&mut vm, "begin 1 while repeat"),
        Err("error: repeat: instruction budget exhausted (1000 instructions)".into())
    );
    assert_eq!(
        eval(
            &mut vm,
            "\"dup 0 > if 1 - dup dup f f then drop\" f !! 20 f"
        ),
        Err("error: f: instruction budget exhausted (1000 instructions)".into())
    );
    assert_eq!(eval(&mut vm, "100 0 do loop 7 .").unwrap(), "7\n");
}

#[test]
fn check_reports_all_errors_without_running() {
    let errs = ethertap::rpcl::check("x.rpcl", "\"never\" .\nthen\n1 if\n\"open").unwrap_err();
    let errs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs,
        [
            "x.rpcl:2:1: error: then: no matching \"if\"",
            "x.rpcl:3:3: error: if: missing \"then\"",
            "x.rpcl:4:1: error: parse: unterminated string",
        ]
    );
    assert!(ethertap::rpcl::check("ok.rpcl", "1 2 + . \"x\" y !!").is_ok());
}

/// (ref) `random64 .` prints like `0x4bcb286cfd056aac`: 0x and 16 lower-case hex digits.
#[test]
fn random_values_print_in_the_reference_format() {
    let mut vm = Vm::new();
    let mut seen = std::collections::HashSet::new();
    for (word, digits) in [("random64", 16), ("random32", 8)] {
        for _ in 0..20 {
            let out = eval(&mut vm, &format!("{word} .")).unwrap();
            let hex = out
                .strip_prefix("0x")
                .and_then(|s| s.strip_suffix('\n'))
                .unwrap_or_else(|| panic!("{word} printed {out:?}"));
            assert_eq!(hex.len(), digits, "{out:?}");
            assert!(
                hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{out:?}"
            );
            seen.insert(out);
        }
    }
    assert!(seen.len() >= 39, "random words repeat: {seen:?}");
}

/// What callers read from an error without parsing its text: the place, the word, the kind.
#[test]
fn errors_carry_their_place_word_and_kind() {
    use ethertap::rpcl::{Cause, RpclError};
    let mut vm = Vm::new();
    let e = vm.eval_line("1 0 /", &mut Vec::new()).unwrap_err();
    assert!(e.at.is_none());
    assert_eq!(e.word, "/");
    assert!(matches!(e.cause, Cause::Word(WordError::DivisionByZero)));
    // The stack's limits are reported as `pop` and `push`, whatever word met them.
    let e = vm.eval_line(".cs drop", &mut Vec::new()).unwrap_err();
    assert_eq!(e.word, "pop");
    assert!(matches!(e.cause, Cause::Word(WordError::Underflow)));
    // A line that does not compile: every error, in order, as the console prints them.
    let errs: Vec<String> = ethertap::rpcl::check_line("then 1 if")
        .unwrap_err()
        .iter()
        .map(RpclError::to_string)
        .collect();
    assert_eq!(
        errs,
        [
            "error: then: no matching \"if\"",
            "error: if: missing \"then\""
        ]
    );
    let e = vm.eval_line("then 1 if", &mut Vec::new()).unwrap_err();
    assert_eq!(e.also.len(), 1);
    assert_eq!(e.to_string(), errs.join("\n"));
}
