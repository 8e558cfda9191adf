//! Hardening regressions that live in process wiring, so they run the
//! real binary: the descriptor limit, and the modes of the files the
//! server creates (RELIABILITY.md, "Hardening", items 7 and 10).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tessera_testkit::process::{Process, free_addr};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn get_from(from: [u8; 4], to: SocketAddr, request: &str) -> String {
    let socket = socket_from(from, to);
    let mut conn = socket;
    conn.write_all(request.as_bytes()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    let _ = conn.read_to_string(&mut out);
    out
}

use tessera_testkit::connect_from as socket_from;

/// Item 7: 1,100 idle connections under `ulimit -n 1024` took down
/// validate, admin and console alike (`accept error: Too many open
/// files`). The connection limit is fitted under the descriptor limit at
/// start (with a warning), one address gets at most 3/4 of it, and another
/// address still reaches `/healthz` and the admin API.
#[test]
fn a_flood_under_a_low_descriptor_limit_leaves_room_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = free_addr();
    let listen = addr.to_string();
    // The soft and hard limits both 256: the server cannot raise it.
    let server = Process::spawn(
        "bash",
        &[
            "-c",
            "ulimit -Sn 256 && ulimit -Hn 256 && exec \"$0\" \"$@\"",
            BIN,
            "server",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &dir.path().join("server.log"),
        &[],
    );
    let admin_key = std::fs::read_to_string(data.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    // 300 idle connections from one address (more than the limit).
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| socket_from([127, 0, 0, 1], addr))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let health = get_from(
        [127, 0, 0, 2],
        addr,
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let admin = get_from(
        [127, 0, 0, 3],
        addr,
        &format!(
            "GET /v1/admin/licenses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin_key}\r\nconnection: close\r\n\r\n"
        ),
    );
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
    let logs = server.logs();
    assert!(
        logs.contains("open-file limit is below the connection limit"),
        "a warning about the low limit:\n{logs}"
    );
    assert!(!logs.contains("Too many open files"), "{logs}");
    drop(flood);
}

/// Item 10: in a pre-existing 0755 data directory, `tessera.db`, `-wal`
/// and `-shm` were 0644 and held webhook secrets in clear. Every file the
/// server creates is 0600 whatever the directory's mode, and the server
/// warns about the directory.
#[test]
fn every_file_the_server_creates_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let addr = free_addr();
    let server = Process::spawn(
        BIN,
        &[
            "server",
            "--listen",
            &addr.to_string(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &dir.path().join("server.log"),
        &[],
    );
    // A write, so the WAL and shared-memory files exist.
    let admin_key = std::fs::read_to_string(data.join("admin.key")).unwrap();
    let body = r#"{"customer":"Acme","plan":"gold","duration":"30d"}"#;
    let answer = get_from(
        [127, 0, 0, 1],
        addr,
        &format!(
            "POST /v1/admin/licenses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            admin_key.trim(),
            body.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for name in [
        "tessera.db",
        "tessera.db-wal",
        "tessera.db-shm",
        "signing.key",
        "admin.key",
        "secrets.key",
    ] {
        assert!(seen.iter().any(|s| s == name), "{name} in {seen:?}");
    }
    let logs = server.logs();
    assert!(
        logs.contains("the data directory is accessible to other users"),
        "{logs}"
    );
}

/// Item 9: `?limit=` on the instances list was ignored. `tessera license
/// instances` shows a page at a time and says how to get the next.
#[tokio::test]
async fn the_cli_fleet_list_is_paginated() {
    use tessera_testkit::process::ServerProcess;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Any free port, chosen by the server itself (no bind-release race).
    let server = ServerProcess::start(BIN, &data, "127.0.0.1:0".parse().unwrap(), "server.log");
    let (id, token) = server
        .issue(serde_json::json!({"customer": "Acme", "plan": "gold", "duration": "30d"}))
        .await;
    for i in 0..3 {
        let (status, _) = server
            .process
            .post(
                "/v1/validate",
                serde_json::json!({"token": token, "instance_id": format!("i-cli{i:04}")}),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("TESSERA_SERVER", server.url())
            .env("TESSERA_DATA_DIR", &server.data_dir)
            .env_remove("TESSERA_ADMIN_KEY")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(&["license", "instances", &id, "--limit", "2"]);
    assert_eq!(first.matches("i-cli").count(), 2, "{first}");
    assert!(first.contains("Installations 1–2 of 3"), "{first}");
    assert!(first.contains("Next page: --offset 2"), "{first}");
    let rest = run(&["license", "instances", &id, "--limit", "2", "--offset", "2"]);
    assert_eq!(rest.matches("i-cli").count(), 1, "{rest}");
    assert!(!rest.contains("Next page"), "{rest}");
}
