//! The memory budget: an index larger than the budget is sorted and searched in scratch files, and prune and
//! check decide exactly what they decide in memory.

use std::process::Command;

use crate::common::{Env, assert_same_tree, pseudo_random, stderr};

/// Runs gumvault on `repo` with its own cache, the budget given (if any), its clock moved ahead by `clock`.
fn run_json(env: &Env, repo: &str, cache: &str, budget: Option<&str>, args: &[&str], clock: &str) -> serde_json::Value {
    let mut c = env.cmd();
    c.env("GUMVAULT_REPO", repo).env("GUMVAULT_CACHE_DIR", env.path(cache));
    if let Some(b) = budget {
        c.args(["--memory-budget", b]);
    }
    c.env("GUMVAULT_TEST_CLOCK_OFFSET", clock);
    let out = c.args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?} with budget {budget:?}: {}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["report"].clone()
}

/// The report without what is expected to differ between the two runs.
fn without(mut v: serde_json::Value, keys: &[&str]) -> serde_json::Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

#[test]
fn a_budget_smaller_than_the_index_spills_and_prune_and_check_decide_the_same() {
    let env = Env::new();
    let src = env.path("src");
    // 4,000 small distinct files: each is one blob, so the index has far more records than the smallest run.
    for d in 0..8 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
    }
    let write = |seed: u64| {
        for i in 0..4000u64 {
            let name = src.join(format!("d{}/f{i}", i % 8));
            if seed == 0 || i % 3 == 0 {
                std::fs::write(name, pseudo_random(300, seed * 10_000 + i)).unwrap();
            }
        }
    };
    write(0);
    env.ok(&["backup", src.to_str().unwrap()]);
    write(1); // a third of the files change: their old blobs become unused once the first snapshot goes
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["forget", "--keep-last", "1"]);
    let copy = env.path("copy").to_string_lossy().into_owned();
    assert!(Command::new("cp").args(["-a", &env.repo, &copy]).status().unwrap().success());

    for round in 0..2 {
        let clock = format!("{}h", 25 * round);
        let prune = ["prune", "--max-unused", "0%"];
        let memory = run_json(&env, &env.repo, "cache-a", None, &prune, &clock);
        let spilled = run_json(&env, &copy, "cache-b", Some("64K"), &prune, &clock);
        assert_eq!(memory["index_spilled"], false, "{memory}");
        assert_eq!(spilled["index_spilled"], true, "{spilled}");
        assert_eq!(without(memory.clone(), &["index_spilled"]), without(spilled, &["index_spilled"]), "round {round}");
        if round == 0 {
            assert!(memory["packs_repacked"].as_u64().unwrap() > 0, "partly used packs are repacked: {memory}");
        } else {
            assert!(memory["packs_deleted"].as_u64().unwrap() > 0, "the next prune deletes them: {memory}");
        }
    }
    let memory = run_json(&env, &env.repo, "cache-a", None, &["check", "--read-data"], "50h");
    let spilled = run_json(&env, &copy, "cache-b", Some("64K"), &["check", "--read-data"], "50h");
    assert_eq!(spilled["index_spilled"], true);
    assert_eq!(memory["problems"], serde_json::json!([]), "{memory}");
    let same = ["index_spilled", "packs_verified"];
    assert_eq!(without(memory.clone(), &same), without(spilled.clone(), &same));
    assert!(memory["blobs"].as_u64().unwrap() >= 4000, "{memory}");

    let target = env.path("restored");
    let out = env
        .cmd()
        .env("GUMVAULT_REPO", &copy)
        .env("GUMVAULT_CACHE_DIR", env.path("cache-b"))
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
