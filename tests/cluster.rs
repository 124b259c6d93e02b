//! Three nodes on loopback, one PostgreSQL, a load balancer in front: they act as one
//! service (issue 11). Real processes, so a node can be killed with SIGKILL:
//!
//! * one customer's messages to different nodes at the same moment are answered once each,
//!   in order, from one thread; a `MessageSid` retried to another node is processed once;
//! * the same slot booked from two nodes at once is booked once;
//! * an inline TwiML answer comes back when another node owns the conversation;
//! * a node killed while it answers a message: another node answers it (over REST, its
//!   webhook having died with the node), and the customer's next message continues the
//!   thread;
//! * a node killed during a call: Twilio's action request lands on another node, which
//!   resumes the call from its snapshot with the same agent and history;
//! * one sender's messages spread over the three nodes are limited at the one quota (shared
//!   in Redis, under a key prefix of this run's own);
//! * `/actors` on any node shows every node, the dead one marked, and the cluster's calls;
//!   `/metrics` has a `node` label.
//!
//! Needs PostgreSQL (`TEST_DATABASE_URL`, default this machine kind's `127.0.0.1:5432/test`)
//! and Redis (`TEST_REDIS_URL`, default `127.0.0.1:6379`); without them the test says it was
//! skipped — except under `CI=true`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::domain::transcript::Role;
use actors::store::{CallStore, PgStore, ThreadStore};
use serde_json::Value;
use support::{twiml_messages, FakeTwilioRest};
use switchboard::sim::mock_openai::{MockOptions, MockServer};
use switchboard::sim::twilio::{sine_ulaw, Event, LiveCall};

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "cluster-test-token";
const ACCOUNT_SID: &str = "AC00000000000000000000000000000011";
const STORE_NUMBER: &str = "+18005550100";

/// The database for this run: a schema of its own, dropped at the end.
struct Database {
    url: String,
    schema: String,
}

impl Database {
    async fn create() -> Option<Database> {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!(
            "sb_cluster_{}_{:x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let made = async {
            let (client, connection) =
                tokio_postgres::connect(&base, tokio_postgres::NoTls).await?;
            actix_web::rt::spawn(connection);
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
        }
        .await;
        if let Err(err) = made {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but PostgreSQL is unreachable: {err}"
            );
            eprintln!("skipped: PostgreSQL not reachable ({err}); set TEST_DATABASE_URL");
            return None;
        }
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(Database {
            url: format!("{base}{separator}options=-c%20search_path%3D{schema}"),
            schema,
        })
    }
}

/// The schema goes with the test, also when it fails: from a thread of its own, since the
/// test's runtime may be stopping.
impl Drop for Database {
    fn drop(&mut self) {
        let base = self.url.split("options=").next().unwrap_or_default();
        let base = base.trim_end_matches(['?', '&']).to_owned();
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&base, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&drop).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "the test schema {} was left behind: {dropped:?}",
                self.schema
            );
        }
    }
}

/// The shared limits' Redis for this run: a key prefix of its own, deleted at the end.
struct Redis {
    url: String,
    prefix: String,
}

impl Redis {
    async fn reachable() -> Option<Redis> {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!(
            "switchboard-test:cluster:{}:{:x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let probe = async {
            let client = redis::Client::open(url.as_str())?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        match actix_web::rt::time::timeout(5 * SECOND, probe).await {
            Ok(Ok(_)) => Some(Redis { url, prefix }),
            failed => {
                let err = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => "no answer within 5 s".to_owned(),
                };
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but Redis is unreachable: {err}"
                );
                eprintln!("skipped: Redis not reachable ({err}); set TEST_REDIS_URL");
                None
            }
        }
    }

    async fn clean(&self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL")
                .arg(keys)
                .query_async::<i64>(&mut connection)
                .await;
        }
    }
}

/// A TCP load balancer: each connection goes to the pinned node if one is pinned, else to
/// the next live node in turn (a node that refuses the connection is skipped), as any load
/// balancer in front of a cluster would.
struct Balancer {
    port: u16,
    backends: Arc<Mutex<Vec<u16>>>,
    pinned: Arc<Mutex<Option<u16>>>,
}

impl Balancer {
    fn start() -> Balancer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("balancer binds");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let backends: Arc<Mutex<Vec<u16>>> = Arc::default();
        let pinned: Arc<Mutex<Option<u16>>> = Arc::default();
        let (all, pin) = (backends.clone(), pinned.clone());
        actix_web::rt::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let mut turn = 0usize;
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pinned = *pin.lock().expect("lock");
                let backends = all.lock().expect("lock").clone();
                turn += 1;
                let order: Vec<u16> = match pinned {
                    Some(port) => vec![port],
                    None => (0..backends.len())
                        .filter_map(|i| backends.get((turn + i) % backends.len()).copied())
                        .collect(),
                };
                actix_web::rt::spawn(async move {
                    for port in order {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                        {
                            let _ = inbound.set_nodelay(true);
                            let _ = outbound.set_nodelay(true);
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Balancer {
            port,
            backends,
            pinned,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pin(&self, port: Option<u16>) {
        *self.pinned.lock().expect("lock") = port;
    }
}

/// One `switchboard serve` process of the cluster.
struct Node {
    id: String,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    fn start(
        n: usize,
        config: &Path,
        db: &Database,
        redis: &Redis,
        public: &str,
        mock: &str,
        rest: &str,
        dir: &Path,
    ) -> Node {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // Named as a node names itself by default (`host:port`), colon included.
        let id = format!("node-{n}-{}:{port}", std::process::id());
        let log = dir.join(format!("{id}.log"));
        let child = Command::new(switchboard_binary())
            .args(["serve", "--config"])
            .arg(config)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.join(&id))
            .env("DATABASE_URL", &db.url)
            .env("SWITCHBOARD_NODE_ID", &id)
            .env("PUBLIC_URL", public)
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
            .env("TWILIO_API_BASE", rest)
            .env("TWILIO_PHONE_NUMBER", STORE_NUMBER)
            .env("OPENAI_API_KEY", "sk-cluster-test")
            .env("OPENAI_BASE_URL", mock)
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_ADMIN_TOKEN")
            .env("REDIS_URL", &redis.url)
            .env("SWITCHBOARD_REDIS_PREFIX", &redis.prefix)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the switchboard binary starts");
        Node {
            id,
            port,
            child,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + 30 * SECOND;
        loop {
            let health = awc::Client::default()
                .get(format!("{}/health", self.url()))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became healthy: {}",
                self.id,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no goodbye, no final record, no released lease.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `switchboard` built with this test, or `SWITCHBOARD_BIN` (the benchmark runs the
/// release build's nodes).
fn switchboard_binary() -> PathBuf {
    std::env::var_os("SWITCHBOARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_switchboard")))
}

/// POSTs a Twilio webhook to `node`, signed for the public URL the cluster shares.
async fn post_signed(
    node: &str,
    public: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature =
        actors::protocol::twilio::signature::compute(TOKEN, &format!("{public}{path}"), &owned);
    let mut response = awc::Client::default()
        .post(format!("{node}{path}"))
        .timeout(30 * SECOND)
        .insert_header(("X-Twilio-Signature", signature))
        .send_form(&params)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

async fn sms(node: &str, public: &str, sid: &str, from: &str, body: &str) -> String {
    let (status, twiml) = post_signed(
        node,
        public,
        "/twilio/messaging",
        &[
            ("MessageSid", sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", from),
            ("To", STORE_NUMBER),
            ("Body", body),
            ("NumMedia", "0"),
        ],
    )
    .await
    .expect("the node answers");
    assert_eq!(status, 200, "{twiml}");
    twiml_messages(&twiml).join(" ")
}

/// The built-in configuration with this test's settings on top (key by key): inline answers
/// (REST only as the fallback), short leases so a dead node's conversations move within
/// seconds, and a sender limit low enough to reach.
fn test_config(dir: &Path) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let path = config.join("switchboard.toml");
    std::fs::write(
        &path,
        "[messaging]\nreply_mode = \"twiml\"\n\n\
         [limits]\nper_sender_per_minute = 4\n\n\
         [cluster]\nheartbeat_ms = 300\ndead_after_ms = 1500\nlease_ms = 2000\n",
    )
    .expect("config written");
    path
}

async fn actors_json(node: &str) -> Value {
    let mut response = awc::Client::default()
        .get(format!("{node}/actors"))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .expect("/actors answers");
    response.json().limit(4 << 20).await.expect("JSON")
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn three_nodes_act_as_one_service_and_survive_a_node_dying() {
    let Some(db) = Database::create().await else {
        return;
    };
    let Some(redis) = Redis::reachable().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = test_config(dir.path());
    // The model takes a moment to answer, so a node can die mid-answer.
    let mock = MockServer::start(
        "127.0.0.1:0",
        MockOptions {
            latency_ms: 600,
            ..MockOptions::default()
        },
    )
    .expect("emulator");
    let rest = FakeTwilioRest::start();
    let balancer = Balancer::start();
    let public = balancer.url();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|n| {
            Node::start(
                n,
                &config,
                &db,
                &redis,
                &public,
                &mock.base_url(),
                &rest.base,
                dir.path(),
            )
        })
        .collect();
    for node in &nodes {
        node.wait_healthy().await;
    }
    *balancer.backends.lock().expect("lock") = nodes.iter().map(|n| n.port).collect();
    let store = PgStore::connect(&db.url, None)
        .await
        .expect("the test reads the store");
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();

    // One customer, two nodes, the same moment: each message answered once, in order.
    let alice = "+14155550101";
    let (first, second) = tokio::join!(
        sms(
            &urls[0],
            &public,
            "SMc0000000000000000000000000000001",
            alice,
            "Where is my order 1001?"
        ),
        sms(
            &urls[1],
            &public,
            "SMc0000000000000000000000000000002",
            alice,
            "What are your opening hours?"
        ),
    );
    assert!(
        !first.is_empty() && !second.is_empty(),
        "{first:?} / {second:?}"
    );
    let thread = store.recent_turns(alice, 20).await.expect("thread");
    let roles: Vec<Role> = thread.iter().map(|t| t.role).collect();
    assert_eq!(
        roles,
        vec![Role::User, Role::Assistant, Role::User, Role::Assistant],
        "one thread, each message then its answer: {thread:#?}"
    );
    let answers: Vec<&str> = thread
        .iter()
        .filter(|t| t.role == Role::Assistant)
        .map(|t| t.text.as_str())
        .collect();
    assert!(answers.contains(&first.as_str()) && answers.contains(&second.as_str()));

    // Twilio retries a webhook to another node: processed once.
    let retried = sms(
        &urls[2],
        &public,
        "SMc0000000000000000000000000000001",
        alice,
        "Where is my order 1001?",
    )
    .await;
    assert!(retried.is_empty(), "{retried}");
    assert_eq!(
        store.recent_turns(alice, 20).await.expect("thread").len(),
        4
    );

    // An inline answer from the node that owns the conversation, asked on another one.
    let owner_asked_elsewhere = sms(
        &urls[2],
        &public,
        "SMc0000000000000000000000000000003",
        alice,
        "Do you sell helmets?",
    )
    .await;
    assert!(
        owner_asked_elsewhere.contains("helmet"),
        "{owner_asked_elsewhere}"
    );
    // Each of these messages reached its owner by the notification of the commit that took
    // it: none had to be found by a sweep (which calls a message stalled after 5 s; later a
    // sender's queued messages, answered one by one, may wait that long).
    assert_eq!(
        metric_sum(&urls, "switchboard_cluster_swept_total", "node=").await,
        0,
        "no conversation taken up by a sweep"
    );

    // The same slot booked from two nodes at once, for two customers: booked once.
    let (bob, carol) = ("+14155550102", "+14155550103");
    let (b, c) = tokio::join!(
        sms(
            &urls[0],
            &public,
            "SMc0000000000000000000000000000004",
            bob,
            "Please book S101, my name is Bob"
        ),
        sms(
            &urls[2],
            &public,
            "SMc0000000000000000000000000000005",
            carol,
            "Please book S101, my name is Carol"
        ),
    );
    let booked = [&b, &c]
        .iter()
        .filter(|reply| reply.contains("confirmation code"))
        .count();
    assert_eq!(booked, 1, "exactly one booking: {b:?} / {c:?}");
    let holder = actors::store::Store::bookings(&store)
        .booking("S101")
        .expect("bookings readable")
        .expect("booked")
        .customer;
    assert!(holder == bob || holder == carol);

    // One sender's messages spread over the three nodes, all at once: the cluster's quota
    // (4 a minute), not 4 per node. The checks all happen before any answer, so the count is
    // exact however long the answers take.
    let erin = "+14155550105";
    let sends = (0..6).map(|n| {
        let (node, public) = (urls[n % 3].clone(), public.clone());
        let sid = format!("SMc00000000000000000000000000001{n:02}");
        async move {
            post_signed(
                &node,
                &public,
                "/twilio/messaging",
                &[
                    ("MessageSid", sid.as_str()),
                    ("From", erin),
                    ("To", STORE_NUMBER),
                    ("Body", "Do you sell helmets?"),
                ],
            )
            .await
        }
    });
    for answer in futures_util::future::join_all(sends).await {
        assert_eq!(answer.expect("the node answers").0, 200);
    }
    assert_eq!(
        metric_sum(&urls, "switchboard_rate_limited_total", "scope=\"sender\"").await,
        2,
        "two of the six over the shared quota"
    );
    assert_eq!(
        metric_sum(
            &urls,
            "switchboard_rate_limit_fallbacks_total",
            "scope=\"sender\""
        )
        .await,
        0,
        "every check was the cluster's"
    );
    wait_until(
        "the four allowed messages in the thread",
        30 * SECOND,
        || async {
            store.recent_turns(erin, 20).await.is_ok_and(|thread| {
                thread.iter().filter(|t| t.role == Role::User).count() == 4
                    && thread.iter().filter(|t| t.role == Role::Assistant).count() == 4
            })
        },
    )
    .await;

    // A node dies while it answers: another node answers (by REST: the webhook that waited
    // died with its node), and the customer's next message continues the thread — with the
    // agent the customer was handed to (`orders`, kept on the customer's record), so the
    // questions stay in that agent's field.
    let dave = "+14155550104";
    let asked = sms(
        &urls[2],
        &public,
        "SMc0000000000000000000000000000006",
        dave,
        "Hi, where is my order 1002?",
    )
    .await;
    assert!(asked.contains("1002"), "{asked}");
    let in_flight = {
        let (node, public) = (urls[2].clone(), public.clone());
        actix_web::rt::spawn(async move {
            post_signed(
                &node,
                &public,
                "/twilio/messaging",
                &[
                    ("MessageSid", "SMc0000000000000000000000000000007"),
                    ("From", dave),
                    ("To", STORE_NUMBER),
                    ("Body", "And do you sell kids helmets?"),
                ],
            )
            .await
        })
    };
    // The customer's words join the thread with the answer (one transaction), so the node's
    // own view tells when it is answering.
    wait_until("node 3 to start answering", 10 * SECOND, || async {
        actors_json(&urls[2]).await["conversations"]
            .as_array()
            .is_some_and(|live| {
                live.iter()
                    .any(|c| c["customer"] == "+1******0104" && c["state"] == "answering")
            })
    })
    .await;
    nodes[2].kill();
    let webhook = in_flight.await.expect("joined");
    assert!(
        webhook.is_err(),
        "the webhook died with its node: {webhook:?}"
    );
    // Twilio retries the webhook to the balancer: the message was acknowledged, so once.
    *balancer.backends.lock().expect("lock") = vec![nodes[0].port, nodes[1].port];
    let retried = sms(
        &public,
        &public,
        "SMc0000000000000000000000000000007",
        dave,
        "And do you sell kids helmets?",
    )
    .await;
    assert!(retried.is_empty(), "{retried}");
    let sent = rest.wait_for(1, 20 * SECOND).await;
    let answer = sent
        .iter()
        .find(|call| call.field("To") == Some(dave))
        .expect("the answer went out by REST");
    assert!(
        answer
            .field("Body")
            .is_some_and(|b| b.to_lowercase().contains("helmet")),
        "{answer:?}"
    );
    let next = sms(
        &public,
        &public,
        "SMc0000000000000000000000000000008",
        dave,
        "Thanks, and is order 1002 shipped?",
    )
    .await;
    assert!(next.contains("1002"), "{next}");
    let thread = store.recent_turns(dave, 20).await.expect("thread");
    let said: Vec<(Role, &str)> = thread.iter().map(|t| (t.role, t.text.as_str())).collect();
    assert_eq!(
        said.len(),
        6,
        "every message once, each answered once: {said:#?}"
    );
    assert_eq!(
        said.iter()
            .filter(|(_, text)| text.to_lowercase().contains("helmet"))
            .count(),
        2,
        "the question and its answer: {said:#?}"
    );

    // `/actors` on a live node shows the dead one, marked; the metrics carry the node.
    wait_until("the dead node to be marked", 10 * SECOND, || async {
        let view = actors_json(&urls[0]).await;
        let nodes = view["cluster"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        nodes.len() == 3
            && nodes
                .iter()
                .any(|n| n["node_id"] == nodes_id(&nodes, 3) && n["alive"] == false)
    })
    .await;
    let metrics = awc::Client::default()
        .get(format!("{}/metrics", urls[1]))
        .send()
        .await
        .expect("metrics")
        .body()
        .limit(4 << 20)
        .await
        .expect("metrics body");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(&format!("node=\"{}\"", nodes[1].id)),
        "the node label is on the series"
    );

    // A node dies during a call: Twilio asks the action URL of the balancer, another node
    // answers with a stream that resumes the call, same agent, same history.
    balancer.pin(Some(nodes[1].port));
    let call_sid = "CAc0000000000000000000000000000001";
    let mut call = LiveCall::dial(&public, Some(TOKEN), call_sid, alice, STORE_NUMBER)
        .await
        .expect("the call connects");
    call.wait_for(|e| matches!(e, Event::MarkEchoed { .. }), 10 * SECOND)
        .await
        .expect("greeting plays");
    call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    wait_until("a snapshot with the caller's turn", 15 * SECOND, || async {
        let record = store.get_call(call_sid).await.ok().flatten();
        record.is_some_and(|r| {
            let turns = r.transcript.turns();
            r.is_live()
                && turns.iter().any(|t| t.role == Role::User)
                && turns.iter().any(|t| t.role == Role::Assistant)
        })
    })
    .await;
    // Any node's `/actors` counts the call among the cluster's.
    wait_until(
        "the cluster's call count on another node",
        10 * SECOND,
        || async { actors_json(&urls[0]).await["cluster"]["calls_total"].as_u64() >= Some(1) },
    )
    .await;
    let items_before = mock.stats().client_items_created;
    nodes[1].kill();
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 10 * SECOND)
        .await
        .expect("the stream breaks with its node");
    balancer.pin(None);
    *balancer.backends.lock().expect("lock") = vec![nodes[0].port];
    let (status, twiml) = post_signed(
        &public,
        &public,
        "/twilio/voice/next",
        &[("CallSid", call_sid), ("From", alice), ("To", STORE_NUMBER)],
    )
    .await
    .expect("the action request is answered");
    assert_eq!(status, 200, "{twiml}");
    assert!(twiml.contains("ResumedAfterDrop"), "{twiml}");
    let mut resumed = LiveCall::follow(&twiml, Some(TOKEN), call_sid)
        .await
        .expect("the resumed stream opens");
    // The hold prompt while the new session gets going (the model takes 600 ms to answer),
    // then the agent: its audio, marked; what was left of the hold is cleared.
    resumed
        .wait_for(|e| matches!(e, Event::Mark { .. }), 15 * SECOND)
        .await
        .expect("the caller hears the agent again");
    let before_the_agent = resumed.drain();
    assert!(
        before_the_agent
            .iter()
            .any(|e| matches!(e, Event::Media { .. }))
            && before_the_agent.iter().any(|e| matches!(e, Event::Clear)),
        "hold audio, cleared when the agent spoke: {before_the_agent:?}"
    );
    let stats = mock.stats();
    let instructions = stats
        .last_session
        .as_ref()
        .and_then(|s| s["instructions"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        instructions.contains("The call was interrupted"),
        "{instructions}"
    );
    assert!(
        stats.client_items_created > items_before,
        "the new session was given the conversation so far"
    );
    resumed.hang_up().await.expect("hang up");
    wait_until("the resumed call's final record", 10 * SECOND, || async {
        store
            .get_call(call_sid)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| !r.is_live())
    })
    .await;
    let record = store
        .get_call(call_sid)
        .await
        .expect("store")
        .expect("record");
    assert_eq!(record.node.as_deref(), Some(nodes[0].id.as_str()));
    assert!(
        record
            .transcript
            .turns()
            .iter()
            .filter(|t| t.role == Role::Assistant)
            .count()
            >= 2,
        "both parts of the call: {:#?}",
        record.transcript
    );

    drop(nodes);
    drop(store);
    drop(db);
    redis.clean().await;
}

/// The sum over `nodes` of the series `name` whose labels include `label`.
async fn metric_sum(nodes: &[String], name: &str, label: &str) -> u64 {
    let mut sum = 0;
    for node in nodes {
        let body = awc::Client::default()
            .get(format!("{node}/metrics"))
            .send()
            .await
            .expect("metrics")
            .body()
            .limit(4 << 20)
            .await
            .expect("metrics body");
        sum += String::from_utf8_lossy(&body)
            .lines()
            .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    sum
}

/// The id of the `n`-th node (1-based) among the listed ones, by its name.
fn nodes_id(nodes: &[Value], n: usize) -> String {
    nodes
        .iter()
        .filter_map(|node| node["node_id"].as_str())
        .find(|id| id.starts_with(&format!("node-{n}-")))
        .unwrap_or_default()
        .to_owned()
}

/// What failover costs a caller (BENCHMARKS.md): `FAILOVER_CALLS` calls (default 20) on one
/// node of three, the node killed with SIGKILL; each simulated Twilio call follows its
/// `<Connect action>` through the balancer to the two survivors and the seconds until the
/// agent is heard again are printed, p50/p99. The cluster runs its default `[cluster]`
/// settings, or with `FAILOVER_DEAD_AFTER_MS` that `cluster.dead_after_ms` (and a heartbeat
/// four times as often). `FAILOVER_MODEL_LATENCY_MS` delays each of the emulator's responses
/// as a real model's first audio is (default 0). With `SWITCHBOARD_BIN` the nodes and the
/// OpenAI emulator are that binary's (the release build); else this test's build and an
/// in-process emulator.
///
/// `cargo test --test cluster failover_cost -- --ignored --nocapture`
#[actix_web::test]
#[ignore = "a measurement for BENCHMARKS.md, not a check"]
async fn failover_cost() {
    let Some(db) = Database::create().await else {
        return;
    };
    let Some(redis) = Redis::reachable().await else {
        return;
    };
    let calls: usize = std::env::var("FAILOVER_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let config = config.join("switchboard.toml");
    // Every simulated call comes from 127.0.0.1.
    let mut settings = "[limits]\nper_ip_per_second = 100000\n".to_owned();
    if let Some(dead_after) = std::env::var("FAILOVER_DEAD_AFTER_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        settings.push_str(&format!(
            "\n[cluster]\ndead_after_ms = {dead_after}\nheartbeat_ms = {}\n",
            (dead_after / 4).max(50)
        ));
    }
    std::fs::write(&config, settings).expect("config");
    let latency_ms: u64 = std::env::var("FAILOVER_MODEL_LATENCY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    let (_in_process, _emulator_process, mock_url) = match std::env::var_os("SWITCHBOARD_BIN") {
        Some(bin) => {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let child = Command::new(bin)
                .args(["mock-openai", "--bind", &format!("127.0.0.1:{port}")])
                .args(["--latency-ms", &latency_ms.to_string()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("the emulator starts");
            actix_web::rt::time::sleep(SECOND).await;
            (
                None,
                Some(KillOnDrop(child)),
                format!("http://127.0.0.1:{port}/v1"),
            )
        }
        None => {
            let options = MockOptions {
                latency_ms,
                ..MockOptions::default()
            };
            let mock = MockServer::start("127.0.0.1:0", options).expect("emulator");
            let url = mock.base_url();
            (Some(mock), None, url)
        }
    };
    let rest = FakeTwilioRest::start();
    let balancer = Balancer::start();
    let public = balancer.url();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|n| {
            Node::start(
                n,
                &config,
                &db,
                &redis,
                &public,
                &mock_url,
                &rest.base,
                dir.path(),
            )
        })
        .collect();
    for node in &nodes {
        node.wait_healthy().await;
    }
    let store = PgStore::connect(&db.url, None).await.expect("store");

    // Every call on node 1, each past its first exchange (a snapshot with both sides).
    balancer.pin(Some(nodes[0].port));
    *balancer.backends.lock().expect("lock") = nodes.iter().map(|n| n.port).collect();
    let mut live = Vec::new();
    for n in 0..calls {
        let sid = format!("CAf{n:031x}");
        let from = format!("+1415555{n:04}");
        let mut call = LiveCall::dial(&public, Some(TOKEN), &sid, &from, STORE_NUMBER)
            .await
            .expect("the call connects");
        call.wait_for(|e| matches!(e, Event::MarkEchoed { .. }), 20 * SECOND)
            .await
            .expect("greeting plays");
        call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
        live.push((sid, call));
    }
    for (sid, _) in &live {
        wait_until("a snapshot with the caller's turn", 30 * SECOND, || async {
            store.get_call(sid).await.ok().flatten().is_some_and(|r| {
                let turns = r.transcript.turns();
                turns.iter().any(|t| t.role == Role::User)
                    && turns.iter().any(|t| t.role == Role::Assistant)
            })
        })
        .await;
    }
    for (_, call) in &mut live {
        call.drain();
    }

    // Node 1 dies; Twilio asks each call's action URL through the balancer (now the two
    // survivors) and opens the stream it is given.
    balancer.pin(None);
    *balancer.backends.lock().expect("lock") = vec![nodes[1].port, nodes[2].port];
    let killed = Instant::now();
    nodes[0].kill();
    let followed = live.into_iter().map(|(sid, mut call)| {
        let public = public.clone();
        actix_web::rt::spawn(async move {
            call.wait_for(|e| matches!(e, Event::Closed { .. }), 10 * SECOND)
                .await
                .expect("the stream breaks with its node");
            let broke = Instant::now();
            let (status, twiml) = post_signed(
                &public,
                &public,
                "/twilio/voice/next",
                &[
                    ("CallSid", &sid),
                    ("From", "+14155550000"),
                    ("To", STORE_NUMBER),
                ],
            )
            .await
            .expect("the action request is answered");
            assert_eq!(status, 200, "{twiml}");
            let answered = Instant::now();
            let mut resumed = LiveCall::follow(&twiml, Some(TOKEN), &sid)
                .await
                .expect("the resumed stream opens");
            // Hold audio first (no mark), then the agent: audio followed by its mark; a
            // `clear` flushes what is left of the hold when the agent is ready.
            let (mut first_audio, mut after_clear, mut last_audio) = (None, None, None);
            let mut hold_chunks = 0;
            loop {
                let event = resumed
                    .wait_for(|_| true, 30 * SECOND)
                    .await
                    .expect("the resumed call goes on");
                let now = Instant::now();
                match event {
                    Event::Media { .. } => {
                        first_audio.get_or_insert(now);
                        last_audio = Some(now);
                        if after_clear.is_none() {
                            hold_chunks += 1;
                        }
                    }
                    Event::Clear => after_clear = Some(now),
                    Event::Mark { .. } => break,
                    _ => {}
                }
            }
            let agent = after_clear.or(last_audio).unwrap_or_else(Instant::now);
            let first_audio = first_audio.unwrap_or(agent);
            let _ = resumed.hang_up().await;
            Sample {
                broke_after_kill: broke.duration_since(killed),
                action_wait: answered.duration_since(broke),
                silence: first_audio.duration_since(killed),
                hold: agent.duration_since(first_audio),
                total: agent.duration_since(killed),
                hold_chunks,
            }
        })
    });
    let mut samples = Vec::new();
    for task in followed.collect::<Vec<_>>() {
        samples.push(task.await.expect("joined"));
    }
    let quantiles = |pick: fn(&Sample) -> Duration| {
        let mut values: Vec<f64> = samples.iter().map(|s| pick(s).as_secs_f64()).collect();
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values.get(rank - 1).copied().unwrap_or_default()
        };
        format!(
            "p50 {:.3} s, p99 {:.3} s, max {:.3} s",
            at(0.5),
            at(0.99),
            at(1.0)
        )
    };
    println!(
        "failover of {} calls (node killed with SIGKILL):",
        samples.len()
    );
    println!(
        "  kill → stream closed at Twilio:       {}",
        quantiles(|s| s.broke_after_kill)
    );
    println!(
        "  action request → TwiML answered:      {}",
        quantiles(|s| s.action_wait)
    );
    println!(
        "  kill → first audio (silence heard):   {}",
        quantiles(|s| s.silence)
    );
    println!(
        "  hold audio heard before the agent:    {}",
        quantiles(|s| s.hold)
    );
    println!(
        "  kill → agent heard again (total):     {}",
        quantiles(|s| s.total)
    );
    let chunks: Vec<u64> = samples.iter().map(|s| s.hold_chunks).collect();
    println!("  audio messages before the agent's, per call: {chunks:?}");

    drop(nodes);
    drop(store);
    drop(db);
    redis.clean().await;
}

/// One resumed call's timings.
struct Sample {
    broke_after_kill: Duration,
    action_wait: Duration,
    silence: Duration,
    hold: Duration,
    total: Duration,
    /// Audio messages before the agent's (hold audio, and the agent's first one when no
    /// `clear` came).
    hold_chunks: u64,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
