//! `switchboard chat`: talk to a running server from the terminal as a web-chat customer,
//! over the same `/chat/ws` socket the page uses. Answers stream in as they are written.

use std::io::{BufRead, Write};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

/// Connects to `target` (an `http(s)://` origin) as a new web customer, or as `id`.
pub async fn run(target: &str, id: Option<String>) -> anyhow::Result<()> {
    let id = id.unwrap_or_else(|| format!("terminal-{:016x}", rand::random::<u64>()));
    let origin = target.trim_end_matches('/');
    let ws_origin = if let Some(rest) = origin.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = origin.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        anyhow::bail!("--target must start with http:// or https://, got {target}");
    };
    let url = format!("{ws_origin}/chat/ws?id={id}");
    // HTTP/1.1-only ALPN (a WebSocket cannot run over HTTP/2 in awc), TCP_NODELAY.
    let client = awc::Client::builder()
        .connector(actors::http::connector(actors::http::Alpn::Http1Only))
        .finish();
    let (_response, socket) = client
        .ws(url.as_str())
        .connect()
        .await
        .map_err(|err| anyhow::anyhow!("cannot reach {url}: {err}"))?;
    let (mut sink, mut frames) = socket.split();

    // Stdin is blocking: read it on its own thread and hand lines over.
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    eprintln!("Connected as {id}. Type a message and press Enter; Ctrl-D to quit.");
    prompt();
    let mut answering = false;
    // Answers still owed: at the end of input (Ctrl-D, or a piped file) they are awaited.
    let mut owed = 0usize;
    let mut input_open = true;
    while input_open || owed > 0 {
        tokio::select! {
            line = lines.recv(), if input_open => match line {
                Some(line) if line.trim().is_empty() => prompt(),
                Some(line) => {
                    let frame = json!({"type": "message", "text": line}).to_string();
                    sink.send(Message::Text(frame.into())).await?;
                    answering = true;
                    owed += 1;
                }
                None => input_open = false,
            },
            frame = frames.next() => match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let event: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let text = event.get("text").and_then(Value::as_str).unwrap_or("");
                    match event.get("type").and_then(Value::as_str) {
                        Some("token") => {
                            if answering {
                                print!("agent> ");
                                answering = false;
                            }
                            print!("{text}");
                            flush();
                        }
                        Some("done") => {
                            if answering {
                                print!("agent> {text}");
                                answering = false;
                            }
                            println!();
                            owed = owed.saturating_sub(1);
                            prompt();
                        }
                        Some("error") => {
                            let message = event.get("message").and_then(Value::as_str).unwrap_or("error");
                            eprintln!("\nserver: {message}");
                            owed = owed.saturating_sub(1);
                            prompt();
                        }
                        _ => {}
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    eprintln!("\nserver closed the chat: {reason:?}");
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => anyhow::bail!("chat socket failed: {err}"),
                None => break,
            },
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    Ok(())
}

fn prompt() {
    print!("you> ");
    flush();
}

fn flush() {
    let _ = std::io::stdout().flush();
}
