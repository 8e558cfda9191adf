//! `fanout-baseline`: this machine's floor for pushing one frame to N open
//! sockets — a bare TCP server in its own process (`fanout-server`), no
//! HTTP, signing or database — read by N client tasks, timed as
//! `propagation` times the authority's streams.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{find, report};

pub fn fanout_server() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        let (frame_tx, frame_rx) = tokio::sync::watch::channel(0u64);
        let body = std::sync::Arc::new(vec![b'x'; 1024]);
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = frame_rx.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let _ = sock.set_nodelay(true);
                    while rx.changed().await.is_ok() {
                        let n = *rx.borrow_and_update();
                        let mut frame = format!("id: {n}\n").into_bytes();
                        frame.extend_from_slice(&body);
                        if sock.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        use tokio::io::AsyncBufReadExt;
        while lines.read_line(&mut line).await? > 0 {
            if let Ok(n) = line.trim().parse() {
                frame_tx.send_replace(n);
            }
            line.clear();
        }
        anyhow::Ok(())
    })
}

pub fn fanout_baseline(watchers: usize, changes: usize) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .arg("fanout-server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    std::io::BufReader::new(server.stdout.take().context("server stdout")?).read_line(&mut port)?;
    let addr = format!("127.0.0.1:{}", port.trim());
    let mut trigger = server.stdin.take().context("server stdin")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    rt.block_on(async {
        for _ in 0..watchers {
            let mut sock = TcpStream::connect(&addr).await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let now = Instant::now();
                    if let Some(p) = find(&buf[..n], b"id: ") {
                        let digits: String = buf[p + 4..n]
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .map(|&c| c as char)
                            .collect();
                        if let Ok(id) = digits.parse() {
                            let _ = tx.send((id, now));
                        }
                    }
                }
            });
        }
        anyhow::Ok(())
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let mut samples = Vec::new();
    for change in 1..=changes as u64 {
        let sent = Instant::now();
        writeln!(trigger, "{change}")?;
        trigger.flush()?;
        let mut got = 0;
        while got < watchers {
            let (id, at) = rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(60), rx.recv()).await })
                .ok()
                .flatten()
                .context("baseline frame not received")?;
            if id == change {
                got += 1;
                samples.push(at.saturating_duration_since(sent));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(trigger);
    let _ = server.kill();
    report(watchers, changes, samples, None);
    Ok(())
}
