//! The `tessera` binary end to end: a real server process on port 0, the CLI
//! against it, a temp directory each.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tessera_testkit::process::ServerProcess;

mod common;

use common::{BIN, Workdir};

/// The server binary on any free port, logging at debug level.
fn start_server(data_dir: &Path, log_name: &str) -> ServerProcess {
    ServerProcess::start(BIN, data_dir, "127.0.0.1:0".parse().unwrap(), log_name)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// `tessera license issue` for Acme on the enterprise plan.
const ISSUE_ACME: [&str; 6] = [
    "license",
    "issue",
    "--customer",
    "Acme",
    "--plan",
    "enterprise",
];

fn issue(env: &Workdir, s: &ServerProcess, extra: &[&str]) -> (String, String) {
    let mut args = ISSUE_ACME.to_vec();
    args.push("--json");
    args.extend_from_slice(extra);
    let v = json(&env.tessera(s, &args));
    (
        v["license"]["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_new_user_issues_checks_and_extends() {
    let (env, s) = Workdir::with_server();
    assert!(s.public_key.starts_with("k4.public."));
    for file in ["signing.key", "admin.key", "tessera.db"] {
        assert!(env.data().join(file).exists(), "{file}");
    }
    use std::os::unix::fs::PermissionsExt;
    for file in ["signing.key", "admin.key"] {
        let mode = std::fs::metadata(env.data().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // `audit` is an add-on that ends before the license (§20).
    let audit_end = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let features = format!("sso,audit@{audit_end},api_calls=1000/month");
    let out = ok(&env.tessera(
        &s,
        &[
            &ISSUE_ACME[..],
            &["--features", &features, "--duration", "30d"],
        ]
        .concat(),
    ));
    assert!(out.contains("Token (shown only now"), "{out}");
    assert!(out.contains("in 30 days"), "{out}");
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("lic_"))
        .unwrap()
        .to_owned();

    let show = json(&env.tessera(&s, &["license", "show", &id, "--json"]));
    tessera_testkit::assert_license_view(&show);
    assert_eq!(show["revision"], 1);
    assert_eq!(
        show["features"],
        serde_json::json!(["sso", "audit", "api_calls"])
    );
    let until = format!("{audit_end}T00:00:00Z");
    assert_eq!(show["entitlements"]["audit"]["expires_at"], until.as_str());
    let human = ok(&env.tessera(&s, &["license", "show", &id]));
    assert!(
        human.contains(&format!(
            "sso, audit (until {until}), api_calls (0 of 1000 this month)"
        )),
        "{human}"
    );
    // A metered feature's use (§22).
    let usage = ok(&env.tessera(&s, &["license", "usage", &id, "--feature", "api_calls"]));
    assert!(
        usage.starts_with("api_calls: 0 of 1000 this month (UTC) (1000 left, overage block")
            && usage.contains("No consumption reported yet."),
        "{usage}"
    );
    let usage = json(&env.tessera(
        &s,
        &["license", "usage", &id, "--feature", "api_calls", "--json"],
    ));
    assert_eq!(usage["quota"]["limit"], 1000);
    let refused = env.tessera(&s, &["license", "usage", &id, "--feature", "sso"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("unknown_feature"),
        "{stderr}"
    );
    let refused = env.tessera(
        &s,
        &[&ISSUE_ACME[..], &["--features", "a b", "--duration", "30d"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("(422, invalid_feature)"),
        "{stderr}"
    );

    let check = env.tessera(&s, &["check", "--public-key", &s.public_key, &token]);
    let text = ok(&check);
    assert!(
        text.starts_with("valid (active): Acme, plan enterprise"),
        "{text}"
    );

    let out = ok(&env.tessera(&s, &["license", "extend", &id, "--by", "30d"]));
    assert!(out.contains("revision 2"), "{out}");
    assert!(out.contains("in 60 days"), "{out}");
    let show = json(&env.tessera(&s, &["license", "show", &id, "--json"]));
    assert_eq!(show["revision"], 2);
    let text = ok(&env.tessera(&s, &["check", "--public-key", &s.public_key, &token]));
    assert!(text.contains("revision 2"), "{text}");
    assert!(text.contains("in 60 days"), "{text}");

    let human = ok(&env.tessera(&s, &["license", "show", &id]));
    assert!(human.contains("Revision  2"), "{human}");
    let list = ok(&env.tessera(&s, &["license", "list", "--expiring-within", "90d"]));
    assert!(list.contains(&id), "{list}");
    let list = ok(&env.tessera(&s, &["license", "list", "--expiring-within", "7d"]));
    assert!(list.contains("No licenses match"), "{list}");
    let events = ok(&env.tessera(&s, &["events", "--license", &id]));
    assert!(
        events.contains("license.issued") && events.contains("license.extended"),
        "{events}"
    );
}

#[test]
fn check_exit_codes_follow_the_verdict() {
    let (env, s) = Workdir::with_server();
    let (id, token) = issue(&env, &s, &["--duration", "10d"]);
    let check = |t: &str| env.tessera(&s, &["check", "--public-key", &s.public_key, t]);
    assert_eq!(check(&token).status.code(), Some(0));

    ok(&env.tessera(&s, &["license", "suspend", &id, "--reason", "unpaid"]));
    let out = check(&token);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not valid: suspended"));
    ok(&env.tessera(&s, &["license", "reinstate", &id]));
    assert_eq!(check(&token).status.code(), Some(0));
    ok(&env.tessera(&s, &["license", "revoke", &id, "--yes"]));
    assert_eq!(check(&token).status.code(), Some(1));

    let unknown = tessera_protocol::LicenseToken::generate(&mut rand::rng());
    let out = check(unknown.expose_secret());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not_found"));

    let typo = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('a') { 'b' } else { 'a' }
    );
    let out = check(&typo);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mistyped"));

    let other_key = tessera_protocol::SigningKey::generate(&mut rand::rng())
        .public_key()
        .to_paserk();
    let out = env.tessera(&s, &["check", "--public-key", &other_key, &token]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not trusted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = env.tessera(
        &s,
        &[
            "check",
            "--server",
            "http://127.0.0.1:9",
            "--public-key",
            &s.public_key,
            &token,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));

    let mut child = Command::new(BIN)
        .args([
            "check",
            "--server",
            s.url(),
            "--public-key",
            &s.public_key,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(1),
        "token read from stdin (revoked)"
    );
}

#[test]
fn tokens_and_keys_never_reach_logs_or_the_database() {
    let (env, s) = Workdir::with_server();
    let admin_key = std::fs::read_to_string(env.data().join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let signing_key = std::fs::read_to_string(env.data().join("signing.key"))
        .unwrap()
        .trim()
        .to_owned();
    let (id, token) = issue(&env, &s, &["--duration", "10d"]);
    ok(&env.tessera(&s, &["check", "--public-key", &s.public_key, &token]));
    ok(&env.tessera(&s, &["license", "extend", &id, "--by", "1d"]));
    let typo = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('a') { 'b' } else { 'a' }
    );
    let _ = env.tessera(&s, &["check", "--public-key", &s.public_key, &typo]);
    let logs = s.process.logs();
    s.process.kill9();
    assert!(
        logs.contains("license issued"),
        "debug logs were captured: {logs}"
    );
    let mut haystacks = vec![("server log".to_owned(), logs.into_bytes())];
    for entry in std::fs::read_dir(env.data()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("tessera.db") {
            haystacks.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert!(haystacks.len() >= 2, "database files found");
    let secrets = [
        ("token", token.clone()),
        ("token body", token[4..].to_owned()),
        ("mistyped token", typo[4..].to_owned()),
        ("admin key", admin_key[4..].to_owned()),
        ("signing key", signing_key[10..].to_owned()),
    ];
    for (where_, bytes) in &haystacks {
        for (what, secret) in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{what} found in {where_}");
        }
    }
}

#[test]
fn an_acknowledged_extension_survives_kill_9() {
    let (env, s) = Workdir::with_server();
    let (id, _) = issue(&env, &s, &["--duration", "10d"]);
    let extended = json(&env.tessera(&s, &["license", "extend", &id, "--by", "365d", "--json"]));
    s.process.kill9();
    let s = start_server(&env.data(), "server2.log");
    let show = json(&env.tessera(&s, &["license", "show", &id, "--json"]));
    assert_eq!(show["revision"], 2);
    assert_eq!(show["expires_at"], extended["expires_at"]);
}

#[test]
fn acknowledged_activations_survive_kill_9() {
    let (env, s) = Workdir::with_server();
    let (id, token) = issue(&env, &s, &["--duration", "10d", "--max-machines", "2"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let activate = |s: &ServerProcess, fp: &str| {
        let body = serde_json::json!({"token": token, "fingerprint": fp});
        let (status, v) = rt.block_on(s.process.post("/v1/machines/activate", body, None));
        assert_eq!(status, 200, "{v}");
        v["verdict"]["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(activate(&s, "a"), "active");
    assert_eq!(activate(&s, "b"), "active");
    // Killed the instant after both answers: both places are on disk.
    s.process.kill9();
    let s = start_server(&env.data(), "server2.log");
    let listed = json(&env.tessera(&s, &["license", "machines", &id, "--json"]));
    assert_eq!(listed["active"], 2, "{listed}");
    assert_eq!(activate(&s, "c"), "too_many_machines");
    assert_eq!(activate(&s, "a"), "active", "a kept its place");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let env = Workdir::new();
    let _s = start_server(&env.data(), "server.log");
    let out = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(env.data())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another tessera server is already using"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let (_env, s) = Workdir::with_server();
    let log = s.process.log_path.clone();
    let status = s.process.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("authority stopped")
    );
}

#[test]
fn mistakes_get_clear_errors() {
    let (env, s) = Workdir::with_server();
    let (id, _) = issue(&env, &s, &["--duration", "10d"]);
    let err = |out: Output| {
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let e = err(env.tessera(&s, &["license", "revoke", &id]));
    assert!(e.contains("pass --yes"), "{e}");
    let e = err(env.tessera(
        &s,
        &[
            "license",
            "show",
            "lic_01936b2e-7c3a-7def-8a12-0123456789ab",
        ],
    ));
    assert!(e.contains("not found") && e.contains("404"), "{e}");
    let e = err(env.tessera(&s, &["license", "extend", &id, "--by", "soon"]));
    assert!(e.contains("duration"), "{e}");
    let e = err(env.tessera(&s, &["license", "issue", "--customer", "A", "--plan", "p"]));
    assert!(e.contains("give expires_at, duration or perpetual"), "{e}");
    let out = Command::new(BIN)
        .args(["license", "list", "--server", s.url(), "--data-dir"])
        .arg(env.dir.path().join("elsewhere"))
        .env_remove("TESSERA_ADMIN_KEY")
        .output()
        .unwrap();
    let e = err(out);
    assert!(e.contains("no admin key"), "{e}");
    let e = err(env.tessera(&s, &["license", "list", "--server", "http://127.0.0.1:9"]));
    assert!(e.contains("cannot reach the authority"), "{e}");
}

#[test]
fn policies_and_export_from_the_cli() {
    let (env, s) = Workdir::with_server();
    ok(&env.tessera(
        &s,
        &[
            "policy",
            "create",
            "gold",
            "--duration",
            "365d",
            "--features",
            "sso,audit",
            "--offline-grace",
            "14d",
        ],
    ));
    let list = ok(&env.tessera(&s, &["policy", "list"]));
    assert!(list.contains("gold") && list.contains("14d"), "{list}");
    // A trial policy (§23) needs its duration.
    let refused = env.tessera(&s, &["policy", "create", "eval", "--trial"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("invalid_duration"),
        "{stderr}"
    );
    ok(&env.tessera(
        &s,
        &["policy", "create", "eval", "--trial", "--duration", "14d"],
    ));
    let (id, _) = issue(&env, &s, &["--policy", "gold"]);
    let file = env.dir.path().join("acme.license");
    let out = env.tessera(
        &s,
        &[
            "license",
            "export",
            &id,
            "--ttl",
            "90d",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    ok(&out);
    let export: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(export["format"], "tessera-license-export/1");
    assert!(
        export["document"]
            .as_str()
            .unwrap()
            .starts_with("v4.public.")
    );
    let stdout_export: Value = json(&env.tessera(&s, &["license", "export", &id]));
    assert_eq!(stdout_export["license"], id.as_str());

    // Enforcement (§24): previewed, then applied to every license under it.
    let out = ok(&env.tessera(
        &s,
        &[
            "policy",
            "update",
            "gold",
            "--enforcement",
            "warn",
            "--dry-run",
        ],
    ));
    assert!(
        out.starts_with(
            "Dry run, nothing written. Policy gold: 0 of 1 licenses would change verdict"
        ),
        "{out}"
    );
    let show = json(&env.tessera(&s, &["license", "show", &id, "--json"]));
    assert_eq!(show["revision"], 1, "a dry run writes nothing");
    let out = ok(&env.tessera(&s, &["policy", "update", "gold", "--enforcement", "warn"]));
    assert!(
        out.starts_with("Updated policy gold: 0 of 1 licenses changed verdict"),
        "{out}"
    );
    let show = json(&env.tessera(&s, &["license", "show", &id, "--json"]));
    assert_eq!(show["revision"], 2, "a new revision for the clients");
    let policies = json(&env.tessera(&s, &["policy", "list", "--json"]));
    let gold = policies
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "gold")
        .unwrap();
    assert_eq!(gold["enforcement"], "warn");
    let refused = env.tessera(&s, &["policy", "update", "gold"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("nothing_to_update"),
        "{stderr}"
    );
}

#[test]
fn help_explains_options_and_their_environment_variables() {
    let out = Command::new(BIN)
        .args(["license", "issue", "--help"])
        .output()
        .unwrap();
    let help = ok(&out);
    assert!(
        help.contains("--duration") && help.contains("TESSERA_SERVER"),
        "{help}"
    );
    let out = Command::new(BIN)
        .args(["server", "--help"])
        .output()
        .unwrap();
    let help = ok(&out);
    assert!(
        help.contains("TESSERA_LISTEN")
            && help.contains("TESSERA_DATA_DIR")
            && help.contains("0 turns limiting off"),
        "{help}"
    );
}

#[test]
fn keys_rotate_activates_a_new_key_and_retires_the_old_one() {
    use tessera_protocol::{Expectations, SigningKey, TrustedKeys, verify};
    let (env, s) = Workdir::with_server();
    let (_, token) = issue(&env, &s, &["--duration", "30d"]);
    let old_public = s.public_key.clone();
    let old_secret = std::fs::read_to_string(env.data().join("signing.key")).unwrap();
    // Not while the authority runs on the data directory.
    let refused = env.tessera(
        &s,
        &["keys", "rotate", "--data-dir", env.data().to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop the authority"));
    s.process.terminate();
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--data-dir", env.data().to_str().unwrap()])
        .output()
        .unwrap();
    let printed = ok(&out);
    assert!(
        printed.contains("new, active:")
            && printed.contains(&format!("old, retired: {old_public}@")),
        "{printed}"
    );
    let s = start_server(&env.data(), "server2.log");
    assert_ne!(s.public_key, old_public, "the banner shows the new key");
    let keys = json(&env.tessera(&s, &["keys", "--json"]));
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0]["status"].as_str(), keys[0]["public_key"].as_str()),
        (Some("active"), Some(s.public_key.as_str()))
    );
    assert_eq!(
        (keys[1]["status"].as_str(), keys[1]["public_key"].as_str()),
        (Some("retired"), Some(old_public.as_str()))
    );
    let table = ok(&env.tessera(&s, &["keys"]));
    let retired_pin = table
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{old_public}@")))
        .expect("the retired key's pin text")
        .to_owned();
    // New documents carry the new key: a client pinning only the old one refuses them.
    let only_old = env.tessera(&s, &["check", "--public-key", &old_public, &token]);
    assert_eq!(
        only_old.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&only_old.stderr)
    );
    ok(&env.tessera(
        &s,
        &[
            "check",
            "--public-key",
            &s.public_key,
            "--public-key",
            &retired_pin,
            &token,
        ],
    ));
    // Whoever kept the old secret cannot mint documents with it any more.
    let old_key = SigningKey::from_paserk(old_secret.trim()).unwrap();
    let mut keys = TrustedKeys::new();
    keys.pin(&s.public_key).unwrap();
    keys.pin(&retired_pin).unwrap();
    let parsed = tessera_protocol::LicenseToken::parse(&token).unwrap();
    // A second later than the retirement (times are whole seconds).
    let now = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut claims = tessera_testkit::hostile::claims(9, now);
    claims.tfp = parsed.fingerprint();
    let forged = tessera_protocol::sign(&claims, &old_key).unwrap();
    let err = verify(
        forged.as_bytes(),
        &keys,
        &Expectations::for_token(parsed.fingerprint()),
        now,
    )
    .unwrap_err();
    assert_eq!(err.code(), "key_retired");
    let mut before = tessera_testkit::hostile::claims(9, now - chrono::Duration::hours(1));
    before.tfp = parsed.fingerprint();
    let earlier = tessera_protocol::sign(&before, &old_key).unwrap();
    assert!(
        verify(
            earlier.as_bytes(),
            &keys,
            &Expectations::for_token(parsed.fingerprint()),
            now
        )
        .is_ok(),
        "what it signed before still verifies"
    );
}

#[test]
fn machines_are_set_listed_and_released_from_the_cli() {
    let (env, s) = Workdir::with_server();
    ok(&env.tessera(
        &s,
        &[
            "policy",
            "create",
            "seats",
            "--duration",
            "30d",
            "--max-machines",
            "3",
            "--floating",
        ],
    ));
    // The license takes the policy's settings, and its own where given.
    let (id, token) = issue(
        &env,
        &s,
        &[
            "--policy",
            "seats",
            "--max-machines",
            "2",
            "--lease-ttl",
            "10m",
            "--max-borrow",
            "7d",
        ],
    );
    let show = ok(&env.tessera(&s, &["license", "show", &id]));
    assert!(
        show.contains("at most 2, floating (lease 10m, borrow up to 7d)"),
        "{show}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = serde_json::json!({"token": token, "fingerprint": "build-box", "name": "build box"});
    let (status, v) = rt.block_on(s.process.post("/v1/machines/activate", body, None));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"]["status"], "active");
    let list = ok(&env.tessera(&s, &["license", "machines", &id]));
    assert!(list.contains("1 of 2 machines (floating)"), "{list}");
    assert!(list.contains("build box"), "{list}");
    let listed = json(&env.tessera(&s, &["license", "machines", &id, "--json"]));
    let machine = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let out = ok(&env.tessera(&s, &["license", "release", &id, &machine]));
    assert!(out.contains("Released"), "{out}");
    let listed = json(&env.tessera(&s, &["license", "machines", &id, "--json"]));
    assert_eq!(listed["active"], 0);
    assert_eq!(listed["items"][0]["state"], "released");
    // Releasing again, or a bad setting, is a clear error.
    let again = env.tessera(&s, &["license", "release", &id, &machine]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("machine_not_found"));
    let bad = env.tessera(
        &s,
        &[
            "license",
            "issue",
            "--customer",
            "A",
            "--plan",
            "p",
            "--duration",
            "1d",
            "--fingerprint-match",
            "fuzzy",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fingerprint match"));
}
