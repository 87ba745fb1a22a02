//! The dictionary's memory budget (issue 16, class 7): one line storing 20,000 distinct values
//! of about 16 kB (319 MB before the budget) fails cleanly at the budget, and `forget` gives the
//! memory back, to the budget and to the system. Alone in its test binary, so that the process's
//! resident size is this test's.

use ethertap::rpcl::{Vm, DICT_BUDGET};

/// Resident memory of this process in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn eval(vm: &mut Vm, line: &str) -> Result<String, String> {
    let mut out = Vec::new();
    vm.eval_line(line, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

const MB: usize = 1 << 20;

#[test]
fn a_line_storing_300_mb_fails_at_the_budget_and_forget_frees() {
    let mut vm = Vm::new();
    // 31 bytes doubled 9 times: 15,872 bytes, made distinct by the index.
    eval(
        &mut vm,
        "\"0123456789abcdefghijklmnopqrstu\" 9 0 do dup concat loop big !",
    )
    .unwrap();
    let before = rss();
    let err = eval(
        &mut vm,
        "20000 0 do big @ i ->str concat \"v\" i ->str concat ! loop",
    )
    .unwrap_err();
    assert!(
        err.starts_with("error: !: the dictionary's memory budget of 64 MiB is used up"),
        "{err}"
    );
    let grown = rss().saturating_sub(before);
    assert!(
        grown < DICT_BUDGET + 32 * MB,
        "grew by {} MB for a budget of {} MB",
        grown / MB,
        DICT_BUDGET / MB
    );
    let stored: usize = eval(
        &mut vm,
        "0 20000 0 do \"v\" i ->str concat defined? + loop .",
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!((3000..5000).contains(&stored), "{stored} values stored");
    // The stack is as it was before the failing `!`: value and name are still there.
    assert_eq!(eval(&mut vm, "depth .").unwrap(), "2\n");
    eval(&mut vm, ".cs").unwrap();

    // Forgotten, the values free the budget and the memory.
    eval(
        &mut vm,
        "20000 0 do \"v\" i ->str concat dup defined? if forget else drop then loop",
    )
    .unwrap();
    let after = rss();
    assert!(
        after < before + 16 * MB,
        "after forget: {} MB resident, {} MB before the values",
        after / MB,
        before / MB
    );
    eval(
        &mut vm,
        "3000 0 do big @ i ->str concat \"w\" i ->str concat ! loop",
    )
    .expect("the budget is free again");

    // Sets count too: generic data items of 16 kB.
    let err = eval(&mut vm, "20000 0 do big @ i ->str concat s set.insert loop").unwrap_err();
    assert!(err.contains("memory budget"), "{err}");
    eval(
        &mut vm,
        ".cs s set.reset 3000 0 do \"w\" i ->str concat forget loop",
    )
    .unwrap();
    eval(
        &mut vm,
        "1500 0 do big @ i ->str concat s set.insert loop s set.count .",
    )
    .expect("set.reset frees the budget");
}
