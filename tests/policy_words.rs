//! The engine words against a small in-test engine (tests/testengine: real PolicyCell and
//! StatsBoard, fixed interface list), through the RPCL VM's host API.

mod testengine;

use ethertap::ixdp::words::{all_words, register_unavailable_words, NEEDS_ENGINE};
use ethertap::lab::frames::{self, Tag};
use ethertap::rpcl::Vm;
use ethertap::wire::Mac;
use testengine::{engine, vm_for};

fn run(vm: &mut Vm, line: &str) -> Result<String, String> {
    let mut out = Vec::new();
    vm.eval_line(line, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

/// A minimum-size frame (46 zero bytes after the header).
fn frame(dst: Mac, src: Mac, ethertype: u16) -> Vec<u8> {
    frames::raw(dst, src, &[], ethertype, &[0; 46])
}

const CISCO: Mac = Mac([0x00, 0x00, 0x0c, 0x01, 0x02, 0x03]);
const LAA: Mac = Mac([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);

#[test]
fn if_stats_prints_the_exact_format() {
    let e = engine(2, 1);
    let q = e.stats.queue(0, 0);
    for _ in 0..3 {
        q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x0800));
    }
    q.add_tx(2);
    q.add_drop(1);
    q.add_fi_flipped(4);
    e.stats.queue(1, 0).add_err(9);
    let mut vm = vm_for(&e);
    run(
        &mut vm,
        "0 tap.rx.enable 1 fault.enable 12345 1 fault.drop.probability",
    )
    .unwrap();
    run(
        &mut vm,
        "100000 1 fault.dup.probability 1 1 fault.flip.probability",
    )
    .unwrap();
    let expected = "\
0 enp1s0f0 ixgbe queues:1 ZEROCOPY DRV
  rx                    3
  tx                    2
  drop                  1
  noif                  0
  err                   0
  RX tap                enabled
  TX tap                disabled
  fault injection       disabled
    drop probability    0 (0.000%)
    flip probability    0 (0.000%)
    dup probability     0 (0.000%)
    dropped by FI       0
    flipped by FI       4
    duplicated by FI    0
1 veth-b veth queues:1 COPY SKB
  rx                    0
  tx                    0
  drop                  0
  noif                  0
  err                   9
  RX tap                disabled
  TX tap                disabled
  fault injection       enabled
    drop probability    12345 (12.345%)
    flip probability    1 (0.001%)
    dup probability     100000 (100.000%)
    dropped by FI       0
    flipped by FI       0
    duplicated by FI    0
";
    assert_eq!(run(&mut vm, "if.stats").unwrap(), expected);
    run(&mut vm, "if.stats.reset").unwrap();
    let after = run(&mut vm, "if.stats").unwrap();
    assert!(
        after.contains("  rx                    0\n") && !after.contains("err                   9")
    );
    assert!(
        after.contains("RX tap                enabled"),
        "reset keeps the settings"
    );
}

#[test]
fn if_qstats_shows_one_queue_and_the_ring_details() {
    let e = engine(2, 2);
    e.stats.queue(0, 1).on_rx(&frame(LAA, CISCO, 0x0800));
    e.stats.queue(0, 1).add_fi_duplicated(2);
    e.stats.queue(0, 0).add_tx(50);
    let mut vm = vm_for(&e);
    assert_eq!(
        run(&mut vm, "1 0 if.qstats").unwrap(),
        "\
0 enp1s0f0 queue 1
  rx                    1
  tx                    0
  drop                  0
  noif                  0
  err                   0
  dropped by FI         0
  flipped by FI         0
  duplicated by FI      2
  fill ring             101
  rx ring               2
  tx ring               3
  completion ring       4
  free frames           5
  spare frames          6
  rx_dropped            7
  rx_invalid_descs      8
  tx_invalid_descs      9
  rx_ring_full          10
  rx_fill_ring_empty    11
  tx_ring_empty_descs   12
  xdp seen              13
  xdp redirected        14
  xdp passed            15
  xdp kernel path       16
  xdp kernel tap        17
  xdp kernel tap full   18
  (worker did not answer: values may be old)
"
    );
    let fresh = run(&mut vm, "0 0 if.qstats").unwrap();
    assert!(
        fresh.ends_with("  xdp kernel tap full   18\n"),
        "no note when the worker answered: {fresh}"
    );
    let other = run(&mut vm, "0 1 if.qstats").unwrap();
    assert!(
        other.ends_with(
            "  rings                 unavailable: 5 is not a queue of the engine (0..1)\n"
        ),
        "{other}"
    );
    assert_eq!(
        run(&mut vm, "2 0 if.qstats").unwrap_err(),
        "error: if.qstats: 2 is not a queue of interface 0 (0..1)"
    );
    assert_eq!(
        run(&mut vm, "0 2 if.qstats").unwrap_err(),
        "error: if.qstats: 2 is not an interface (0..1)"
    );
    assert_eq!(
        run(&mut vm, "-1 0 if.qstats").unwrap_err(),
        "error: if.qstats: -1 is not a queue of interface 0 (0..1)"
    );
}

#[test]
fn if_mac_show_lists_macs_with_counts_and_vendors() {
    let e = engine(1, 1);
    let q = e.stats.queue(0, 0);
    for _ in 0..1234 {
        q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x0800));
    }
    q.on_rx(&frame(CISCO, LAA, 0x0806));
    let mut vm = vm_for(&e);
    assert_eq!(
        run(&mut vm, "0 if.mac.show").unwrap(),
        "\
0 enp1s0f0 source MACs: 2
  MAC                frames  vendor
  00:00:0c:01:02:03    1234  Cisco Systems, Inc
  02:42:ac:11:00:02       1  Locally Administered Address (LAA)
"
    );
    run(&mut vm, "if.stats.reset").unwrap();
    assert_eq!(
        run(&mut vm, "0 if.mac.show").unwrap(),
        "0 enp1s0f0 source MACs: 0\n"
    );
    assert_eq!(
        run(&mut vm, "1 if.mac.show").unwrap_err(),
        "error: if.mac.show: 1 is not an interface (only 0)"
    );
}

#[test]
fn if_mac_show_reports_what_did_not_fit() {
    let e = engine(1, 1);
    let q = e.stats.queue(0, 0);
    for i in 0..1030u32 {
        let src = Mac([0x00, 0x50, 0x56, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        q.on_rx(&frame(CISCO, src, 0x0800));
    }
    let mut vm = vm_for(&e);
    let out = run(&mut vm, "0 if.mac.show").unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0 enp1s0f0 source MACs: 1024");
    assert_eq!(lines.len(), 1 + 1 + 1024 + 1);
    assert_eq!(
        lines[1026],
        "  not listed: 6 frames from about 6 further MACs (the table holds 1024 per queue)"
    );
    assert!(
        lines[2..1026].iter().all(|l| l.ends_with("  VMware, Inc")),
        "{}",
        lines[2]
    );
}

#[test]
fn if_etype_show_lists_types_per_vlan_level() {
    let e = engine(1, 1);
    let q = e.stats.queue(0, 0);
    let tags = [Tag::dot1ad(10), Tag::dot1q(20)];
    q.on_rx(&frames::raw(Mac::BROADCAST, LAA, &tags, 0x0800, &[0; 46]));
    q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x0806));
    q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x0806));
    q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x1234));
    let mut vm = vm_for(&e);
    assert_eq!(
        run(&mut vm, "0 if.etype.show").unwrap(),
        "\
0 enp1s0f0 ethertypes: 5
  level  ethertype            frames  last source
  0      0x0806 ARP                2  00:00:0c:01:02:03
  0      0x1234                    1  00:00:0c:01:02:03
  0      0x88a8 802.1ad QinQ       1  02:42:ac:11:00:02
  1      0x8100 802.1Q VLAN        1  02:42:ac:11:00:02
  2      0x0800 IPv4               1  02:42:ac:11:00:02
"
    );
}

#[test]
fn tap_and_fault_flags_change_the_policy() {
    let e = engine(2, 1);
    let mut vm = vm_for(&e);
    run(&mut vm, "1 tap.rx.enable 0 tap.tx.enable 1 fault.enable").unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.tap_rx, p.tap_tx), ([false, true], [true, false]));
    assert!(p.fault[1].enabled && !p.fault[0].enabled);
    run(&mut vm, "1 tap.rx.disable 0 tap.tx.disable 1 fault.disable").unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.tap_rx, p.tap_tx), ([false; 2], [false; 2]));
    assert!(!p.fault[1].enabled);
    run(
        &mut vm,
        "7 0 fault.drop.probability 8 0 fault.flip.probability 9 1 fault.dup.probability",
    )
    .unwrap();
    let p = e.policy.snapshot();
    assert_eq!(
        (p.fault[0].drop_p, p.fault[0].flip_p, p.fault[1].dup_p),
        (7, 8, 9)
    );
    run(
        &mut vm,
        "0 0 fault.drop.probability 100000 0 fault.flip.probability",
    )
    .unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.fault[0].drop_p, p.fault[0].flip_p), (0, 100_000));
}

#[test]
fn machash_words_insert_delete_reset_and_show() {
    let e = engine(1, 1);
    let mut vm = vm_for(&e);
    for (prefix, pick) in [
        (
            "tap",
            (|p: &ethertap::ixdp::policy::Policy| p.tap_hash.clone()) as fn(&_) -> _,
        ),
        ("drop", |p| p.drop_hash.clone()),
        ("fault", |p| p.fault_hash.clone()),
    ] {
        run(
            &mut vm,
            &format!(
                "02:42:AC:11:00:02 {prefix}.hash.insert 00:00:0C:01:02:03 {prefix}.hash.insert"
            ),
        )
        .unwrap();
        run(&mut vm, &format!("00:00:0c:01:02:03 {prefix}.hash.insert")).unwrap();
        assert_eq!(
            pick(&e.policy.snapshot()).len(),
            2,
            "{prefix}: no duplicates"
        );
        assert_eq!(
            run(&mut vm, &format!("{prefix}.hash.show")).unwrap(),
            "00:00:0c:01:02:03 Cisco Systems, Inc\n02:42:ac:11:00:02 Locally Administered Address (LAA)\n"
        );
        run(&mut vm, &format!("00:00:0c:01:02:03 {prefix}.hash.delete")).unwrap();
        run(&mut vm, &format!("00:00:0c:01:02:03 {prefix}.hash.delete")).unwrap();
        assert_eq!(
            run(&mut vm, &format!("{prefix}.hash.show")).unwrap(),
            "02:42:ac:11:00:02 Locally Administered Address (LAA)\n"
        );
        run(&mut vm, &format!("{prefix}.hash.reset")).unwrap();
        assert!(pick(&e.policy.snapshot()).is_empty());
        assert_eq!(run(&mut vm, &format!("{prefix}.hash.show")).unwrap(), "");
        for bad in ["zz:00", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg"] {
            for op in ["insert", "delete"] {
                let err = run(&mut vm, &format!("{bad} {prefix}.hash.{op}")).unwrap_err();
                assert!(
                    err.starts_with(&format!("error: {prefix}.hash.{op}: ")),
                    "{err}"
                );
                assert!(
                    err.contains(&format!("\"{bad}\" is not a MAC address")),
                    "{err}"
                );
            }
        }
    }
    // Each set is its own: the tap set does not touch the drop set.
    run(&mut vm, "00:00:0c:01:02:03 tap.hash.insert").unwrap();
    let p = e.policy.snapshot();
    assert!(p.drop_hash.is_empty() && p.fault_hash.is_empty() && p.tap_hash.len() == 1);
}

#[test]
fn interface_and_probability_errors_name_the_value() {
    let e = engine(2, 1);
    let mut vm = vm_for(&e);
    for word in [
        "tap.rx.enable",
        "tap.rx.disable",
        "tap.tx.enable",
        "tap.tx.disable",
        "fault.enable",
        "fault.disable",
        "if.mac.show",
        "if.etype.show",
    ] {
        assert_eq!(
            run(&mut vm, &format!("7 {word}")).unwrap_err(),
            format!("error: {word}: 7 is not an interface (0..1)")
        );
        assert_eq!(
            run(&mut vm, &format!("-1 {word}")).unwrap_err(),
            format!("error: {word}: -1 is not an interface (0..1)")
        );
        let err = run(&mut vm, &format!("eth0 {word}")).unwrap_err();
        assert!(
            err.starts_with(&format!("error: {word}: ")) && err.contains("eth0"),
            "{err}"
        );
        let err = run(&mut vm_for(&e), word).unwrap_err();
        assert!(err.contains("underflow"), "{err}");
    }
    for word in [
        "fault.drop.probability",
        "fault.flip.probability",
        "fault.dup.probability",
    ] {
        assert_eq!(
            run(&mut vm, &format!("100001 0 {word}")).unwrap_err(),
            format!("error: {word}: 100001 is not a probability (0..100000 in 1/100000, 100000 = always)")
        );
        assert_eq!(
            run(&mut vm, &format!("-1 1 {word}")).unwrap_err(),
            format!(
                "error: {word}: -1 is not a probability (0..100000 in 1/100000, 100000 = always)"
            )
        );
        let err = run(&mut vm, &format!("half 0 {word}")).unwrap_err();
        assert!(
            err.starts_with(&format!("error: {word}: ")) && err.contains("half"),
            "{err}"
        );
        assert_eq!(
            run(&mut vm, &format!("5 2 {word}")).unwrap_err(),
            format!("error: {word}: 2 is not an interface (0..1)")
        );
    }
    let p = e.policy.snapshot();
    assert_eq!(*p, Default::default(), "failed words changed nothing");
}

#[test]
fn an_engine_without_interfaces_says_so() {
    let e = engine(0, 1);
    let mut vm = vm_for(&e);
    assert_eq!(run(&mut vm, "if.stats").unwrap(), "");
    assert_eq!(
        run(&mut vm, "0 tap.rx.enable").unwrap_err(),
        "error: tap.rx.enable: 0 is not an interface (the engine has none)"
    );
}

#[test]
fn unavailable_words_have_the_same_names_and_help_and_say_how_to_start() {
    let e = engine(2, 1);
    let live = vm_for(&e);
    let mut local = Vm::new();
    register_unavailable_words(&mut local);
    let base: Vec<String> = Vm::new().word_names();
    let added = |vm: &Vm| -> Vec<String> {
        vm.word_names()
            .into_iter()
            .filter(|n| !base.contains(n))
            .collect()
    };
    assert_eq!(added(&live), added(&local));
    assert_eq!(added(&live).len(), all_words().count());
    for w in all_words() {
        assert_eq!(live.help(w.name), Some(w.help));
        assert_eq!(local.help(w.name), Some(w.help));
        assert_eq!(
            run(&mut local, &format!("0 0 {}", w.name)).unwrap_err(),
            format!("error: {}: {NEEDS_ENGINE}", w.name)
        );
    }
}

#[test]
fn the_words_doc_lists_exactly_the_engine_words() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/words-engine.md"))
        .expect("docs/words-engine.md");
    let mut documented: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### `")?.split('`').next())
        .collect();
    let mut registered: Vec<&str> = all_words().map(|w| w.name).collect();
    documented.sort_unstable();
    registered.sort_unstable();
    assert_eq!(documented, registered);
    for w in all_words() {
        assert!(
            doc.contains(w.help),
            "the doc quotes the help of {}",
            w.name
        );
    }
}

#[test]
fn if_counter_pushes_the_counters_that_if_stats_prints() {
    let e = engine(2, 2);
    let q = e.stats.queue(0, 1);
    for _ in 0..3 {
        q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x0800));
    }
    q.add_tx(2);
    q.add_drop(5);
    q.add_fi_flipped(4);
    e.stats.queue(0, 0).add_fi_flipped(1);
    e.stats.queue(1, 0).add_err(9);
    let mut vm = vm_for(&e);
    let stats = run(&mut vm, "if.stats").unwrap();
    // Every counter line of if.stats, read back by its label.
    let mut checked = 0;
    for (ifidx, block) in stats
        .split_inclusive('\n')
        .fold(Vec::<String>::new(), |mut v, l| {
            if !l.starts_with(' ') {
                v.push(String::new());
            }
            v.last_mut().unwrap().push_str(l);
            v
        })
        .iter()
        .enumerate()
    {
        for line in block.lines().skip(1) {
            let label = line[..24].trim();
            let value = line[24..].trim();
            if value.parse::<u64>().is_err() {
                continue;
            }
            let got = run(&mut vm, &format!("\"{label}\" {ifidx} if.counter .")).unwrap();
            assert_eq!(got.trim(), value, "{label} of interface {ifidx}");
            checked += 1;
        }
    }
    assert_eq!(checked, 16, "8 counters of 2 interfaces");
    assert_eq!(
        run(&mut vm, "\"flipped by FI\" 0 if.counter .").unwrap(),
        "5\n"
    );
    assert_eq!(
        run(&mut vm, "\"bitflipped by FI\" 0 if.counter .").unwrap(),
        "5\n",
        "the published spelling"
    );
    assert_eq!(
        run(&mut vm, "\"RX tap\" 0 if.counter").unwrap_err(),
        "error: if.counter: \"RX tap\" is not a counter of if.stats (rx, tx, drop, noif, err, dropped by FI, flipped by FI, duplicated by FI)"
    );
    // A failing word leaves the stack as it was.
    assert_eq!(
        run(&mut vm, ".cs \"rx\" 7 if.counter").unwrap_err(),
        "error: if.counter: 7 is not an interface (0..1)"
    );
    assert_eq!(run(&mut vm, ".s").unwrap(), " 0 [rx]\n 1 [7]\n");
}

#[test]
fn fault_bitflip_probability_is_fault_flip_probability() {
    let e = engine(2, 1);
    let mut vm = vm_for(&e);
    run(&mut vm, "1000 0 fault.bitflip.probability 0 fault.enable").unwrap();
    let by_published_name = run(&mut vm, "if.stats").unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.fault[0].flip_p, p.fault[0].enabled), (1000, true));
    run(&mut vm, "0 0 fault.flip.probability 0 fault.disable").unwrap();
    run(&mut vm, "1000 0 fault.flip.probability 0 fault.enable").unwrap();
    assert_eq!(run(&mut vm, "if.stats").unwrap(), by_published_name);
    assert!(by_published_name.contains("    flip probability    1000 (1.000%)\n"));
    assert_eq!(
        run(&mut vm, "100001 0 fault.bitflip.probability").unwrap_err(),
        "error: fault.bitflip.probability: 100001 is not a probability (0..100000 in 1/100000, 100000 = always)"
    );
}

/// The block of docs/words-engine.md that follows `ok LINE` in the section of `word`.
fn documented_output(word: &str, line: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/words-engine.md"))
        .expect("docs/words-engine.md");
    let section = doc
        .split(&format!("### `{word}`\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section for {word}"));
    let after = section
        .split(&format!("ok {line}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no `ok {line}` example for {word}"));
    after.split("```").next().unwrap().to_string()
}

#[test]
fn if_stats_json_has_the_figures_of_if_stats_plus_bytes_as_documented() {
    let e = engine(2, 1);
    let q = e.stats.queue(0, 0);
    for _ in 0..3 {
        q.on_rx(&frame(Mac::BROADCAST, CISCO, 0x0800));
    }
    q.add_counts(&ethertap::ixdp::stats::Counters {
        rx_bytes: 180,
        ..Default::default()
    });
    q.add_tx(2);
    q.add_tx_bytes(120);
    q.add_drop(1);
    q.add_fi_dropped(1);
    let mut vm = vm_for(&e);
    run(
        &mut vm,
        "0 tap.rx.enable 1 fault.enable 12345 1 fault.drop.probability",
    )
    .unwrap();
    let json = run(&mut vm, "if.stats.json").unwrap();
    assert!(json.ends_with('\n') && json.lines().count() == 1, "{json}");
    // The documented example is this engine's output, exactly.
    assert_eq!(json, documented_output("if.stats.json", "if.stats.json"));

    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let text = run(&mut vm, "if.stats").unwrap();
    for (i, ifr) in v["interfaces"].as_array().unwrap().iter().enumerate() {
        for (label, field) in [
            ("rx", "rx"),
            ("tx", "tx"),
            ("drop", "drop"),
            ("noif", "noif"),
            ("err", "err"),
        ] {
            assert_eq!(
                ethertap_stat(&text, i, label),
                ifr[field].as_u64().unwrap(),
                "{label} of {i}"
            );
        }
        assert_eq!(
            ethertap_stat(&text, i, "dropped by FI"),
            ifr["fault"]["dropped"].as_u64().unwrap()
        );
    }
    assert_eq!(v["interfaces"][0]["rx_bytes"], 180);
    assert_eq!(v["interfaces"][0]["tx_bytes"], 120);
    assert_eq!(v["interfaces"][1]["fault"]["drop_probability"], 12345);
}

/// A counter of `if.stats` text.
fn ethertap_stat(text: &str, ifidx: usize, label: &str) -> u64 {
    let mut in_block = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_block = line.starts_with(&format!("{ifidx} "));
        } else if in_block {
            if let Some(v) = line.trim_start().strip_prefix(label) {
                if v.starts_with("  ") {
                    return v.trim().parse().unwrap();
                }
            }
        }
    }
    panic!("no {label} for {ifidx} in {text}")
}

#[test]
fn tap_filter_compiles_shows_and_keeps_the_old_filter_on_bad_expressions() {
    let e = engine(2, 1);
    let mut vm = vm_for(&e);
    assert_eq!(run(&mut vm, "tap.filter.show").unwrap(), "");
    run(&mut vm, "\"udp port 1234\" tap.filter").unwrap();
    assert_eq!(run(&mut vm, "tap.filter.show").unwrap(), "udp port 1234\n");
    let long = "x".repeat(10_000);
    let bad: [(&str, String); 4] = [
        (
            "tcp port",
            "\"tcp port\" is not a valid filter: can't parse filter expression: syntax error"
                .into(),
        ),
        (
            "no such",
            "\"no such\" is not a valid filter: can't parse filter expression: syntax error"
                .into(),
        ),
        (
            &long,
            format!(
                "\"{}…\" is not a valid filter: it is 10000 bytes long, at most 4096 are allowed",
                "x".repeat(64)
            ),
        ),
        (
            "tcp port ٤٤٣ or h\u{e9}",
            "\"tcp port ٤٤٣ or h\u{e9}\" is not a valid filter: can't parse filter expression: syntax error"
                .into(),
        ),
    ];
    for (expr, message) in bad {
        let err = run(&mut vm, &format!("\"{expr}\" tap.filter")).unwrap_err();
        assert_eq!(err, format!("error: tap.filter: {message}"));
        assert_eq!(
            run(&mut vm, "tap.filter.show").unwrap(),
            "udp port 1234\n",
            "the old filter stays after {expr:.20}"
        );
        assert_eq!(
            e.policy
                .snapshot()
                .tap_filter
                .as_ref()
                .map(|f| f.expr().to_string()),
            Some("udp port 1234".to_string())
        );
    }
    let err = run(&mut vm, "\"aa:bb:cc:dd:ee:ff\" str->mac_t tap.filter").unwrap_err();
    assert!(
        err.starts_with("error: tap.filter: expected a string"),
        "{err}"
    );
    // The expression is kept as given; empty or blank removes it, as tap.filter.reset does.
    run(&mut vm, "\"  vlan 10 \" tap.filter").unwrap();
    assert_eq!(run(&mut vm, "tap.filter.show").unwrap(), "  vlan 10 \n");
    run(&mut vm, "\"  \" tap.filter").unwrap();
    assert!(e.policy.snapshot().tap_filter.is_none());
    run(&mut vm, "\"tcp\" tap.filter tap.filter.reset").unwrap();
    assert!(e.policy.snapshot().tap_filter.is_none());
    assert_eq!(run(&mut vm, "tap.filter.show").unwrap(), "");
    assert!(run(&mut vm_for(&e), "tap.filter")
        .unwrap_err()
        .contains("underflow"));
}

#[test]
fn snaplen_and_sample_take_their_ranges_and_refuse_the_rest() {
    let e = engine(1, 1);
    let mut vm = vm_for(&e);
    run(&mut vm, "96 tap.snaplen 10 tap.sample").unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.snaplen.get(), p.sample.get()), (96, 10));
    run(&mut vm, "262144 tap.snaplen 4294967295 tap.sample").unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.snaplen.get(), p.sample.get()), (262_144, u32::MAX));
    for (line, message) in [
        ("-1 tap.snaplen", "-1 is not a snap length (0 = whole frames, else 1..262144 bytes)"),
        ("262145 tap.snaplen", "262145 is not a snap length (0 = whole frames, else 1..262144 bytes)"),
        ("0 tap.sample", "0 is not a sampling rate (1 = every frame, n = one frame in n, up to 4294967295)"),
        ("-3 tap.sample", "-3 is not a sampling rate (1 = every frame, n = one frame in n, up to 4294967295)"),
        ("4294967296 tap.sample", "4294967296 is not a sampling rate (1 = every frame, n = one frame in n, up to 4294967295)"),
    ] {
        let word = line.split(' ').nth(1).unwrap();
        assert_eq!(run(&mut vm, line).unwrap_err(), format!("error: {word}: {message}"));
    }
    for word in ["tap.snaplen", "tap.sample"] {
        let err = run(&mut vm, &format!("many {word}")).unwrap_err();
        assert!(
            err.starts_with(&format!("error: {word}: ")) && err.contains("many"),
            "{err}"
        );
    }
    let p = e.policy.snapshot();
    assert_eq!(
        (p.snaplen.get(), p.sample.get()),
        (262_144, u32::MAX),
        "failures changed nothing"
    );
    run(&mut vm, "0 tap.snaplen 1 tap.sample").unwrap();
    let p = e.policy.snapshot();
    assert_eq!((p.snaplen, p.sample), Default::default());
}

#[test]
fn tap_status_shows_the_whole_selection() {
    let e = engine(2, 1);
    let mut vm = vm_for(&e);
    run(&mut vm, "1 tap.rx.enable 0 tap.tx.enable 1 tap.tx.enable").unwrap();
    run(
        &mut vm,
        "00:00:0c:01:02:03 tap.hash.insert 02:42:ac:11:00:02 tap.hash.insert",
    )
    .unwrap();
    run(
        &mut vm,
        "00:1b:21:00:00:00-00:1b:21:00:ff:ff tap.hash.insert",
    )
    .unwrap();
    run(
        &mut vm,
        "00:50:56:00:00:00-00:50:56:ff:ff:ff tap.hash.insert",
    )
    .unwrap();
    run(
        &mut vm,
        "\"tcp port 443\" tap.filter 3 tap.sample 128 tap.snaplen",
    )
    .unwrap();
    assert_eq!(
        run(&mut vm, "tap.status").unwrap(),
        "\
RX tap                  1 veth-b
TX tap                  0 enp1s0f0, 1 veth-b
TAP machash             2 MACs, 2 ranges
filter                  tcp port 443
sample                  1 in 3
snaplen                 128 bytes
"
    );
    run(&mut vm, "tap.hash.reset 00:00:0c:01:02:03 tap.hash.insert").unwrap();
    let out = run(&mut vm, "tap.status").unwrap();
    assert!(out.contains("TAP machash             1 MAC\n"), "{out}");
}

#[test]
fn machashes_take_ranges_as_macrange_t_or_text() {
    let e = engine(1, 1);
    let mut vm = vm_for(&e);
    for prefix in ["tap", "drop", "fault"] {
        run(
            &mut vm,
            &format!(
                "\"00:50:56:00:00:00-00:50:56:0f:ff:ff\" str->macrange_t {prefix}.hash.insert \
                 02:42:ac:00:00:00-02:42:AC:00:00:FF {prefix}.hash.insert \
                 00:00:0c:01:02:03 {prefix}.hash.insert \
                 \"00:50:56:00:00:01\" str->mac_t {prefix}.hash.insert"
            ),
        )
        .unwrap();
        assert_eq!(
            run(&mut vm, &format!("{prefix}.hash.show")).unwrap(),
            "\
00:00:0c:01:02:03 Cisco Systems, Inc
00:50:56:00:00:00-00:50:56:0f:ff:ff VMware, Inc
00:50:56:00:00:01 VMware, Inc
02:42:ac:00:00:00-02:42:ac:00:00:ff Locally Administered Address (LAA)
"
        );
        // The same range again is no new entry; a dashed range reads too.
        run(
            &mut vm,
            &format!("00-50-56-00-00-00-00-50-56-0F-FF-FF {prefix}.hash.insert"),
        )
        .unwrap();
        let p = e.policy.snapshot();
        let set = match prefix {
            "tap" => &p.tap_hash,
            "drop" => &p.drop_hash,
            _ => &p.fault_hash,
        };
        assert_eq!((set.len(), set.ranges()), (4, 2));
        for (mac, inside) in [
            (Mac([0x00, 0x50, 0x56, 0x0f, 0xff, 0xff]), true),
            (Mac([0x00, 0x50, 0x56, 0x10, 0x00, 0x00]), false),
            (Mac([0x02, 0x42, 0xac, 0x00, 0x00, 0x80]), true),
            (Mac([0x02, 0x42, 0xac, 0x00, 0x01, 0x00]), false),
        ] {
            assert_eq!(set.contains(&mac), inside, "{prefix}: {mac}");
        }
        // Deleting the MAC inside a range leaves the range; deleting the range removes it.
        run(&mut vm, &format!("00:50:56:00:00:01 {prefix}.hash.delete")).unwrap();
        run(
            &mut vm,
            &format!(
                "\"02:42:ac:00:00:00-02:42:ac:00:00:ff\" str->macrange_t {prefix}.hash.delete"
            ),
        )
        .unwrap();
        assert_eq!(
            run(&mut vm, &format!("{prefix}.hash.show")).unwrap(),
            "00:00:0c:01:02:03 Cisco Systems, Inc\n00:50:56:00:00:00-00:50:56:0f:ff:ff VMware, Inc\n"
        );
        for (item, message) in [
            (
                "00:50:56:ff:ff:ff-00:50:56:00:00:00",
                "00:50:56:ff:ff:ff-00:50:56:00:00:00 is not a range: FROM is above TO".to_string(),
            ),
            (
                "00:50:56:00:00:00-",
                "\"00:50:56:00:00:00-\" is not a MAC address or a MAC range FROM-TO".to_string(),
            ),
            (
                "\"10.0.0.1\" str->ip4_t",
                "ip4_t 10.0.0.1 is not a MAC address or a MAC range FROM-TO".to_string(),
            ),
        ] {
            for op in ["insert", "delete"] {
                assert_eq!(
                    run(&mut vm, &format!("{item} {prefix}.hash.{op}")).unwrap_err(),
                    format!("error: {prefix}.hash.{op}: {message}")
                );
            }
        }
        run(&mut vm, &format!("{prefix}.hash.reset")).unwrap();
    }
}

/// tests/rpcl/engine/*.lines.rpcl: console sessions against the in-test engine with the
/// interfaces of docs/words-engine.md, each line's output and error lines compared with the
/// `.out` file beside it (`RPCL_BLESS=1` rewrites them; review the diff).
#[test]
fn engine_conformance_cases() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rpcl/engine");
    let mut cases: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/rpcl/engine exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".lines.rpcl"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut tokens = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for path in &cases {
        let text = std::fs::read_to_string(path).unwrap();
        let e = testengine::engine_with(&testengine::DOCS, 1);
        let mut vm = vm_for(&e);
        let mut out = String::new();
        for line in text.lines() {
            if !line.starts_with('#') {
                tokens.extend(line.split_whitespace().map(String::from));
            }
            match run(&mut vm, line) {
                Ok(o) => out.push_str(&o),
                Err(err) => {
                    out.push_str(&err);
                    out.push('\n');
                }
            }
        }
        let out_file = path.with_extension("out");
        if std::env::var_os("RPCL_BLESS").is_some() {
            std::fs::write(&out_file, &out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&out_file)
            .unwrap_or_else(|_| panic!("{} has no .out file", path.display()));
        if out != want {
            failures.push(format!(
                "{}: output differs\n--- expected\n{want}--- actual\n{out}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<&str> = all_words()
        .map(|w| w.name)
        .filter(|w| !tokens.contains(*w))
        .collect();
    assert!(
        missing.is_empty(),
        "engine words without a case in tests/rpcl/engine: {missing:?}"
    );
}
