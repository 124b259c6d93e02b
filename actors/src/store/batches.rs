//! Requests of one kind that reach the database while earlier ones are on their way, sent as
//! one statement.
//!
//! A statement's fixed cost on the server — a round trip, the executor's start, a
//! transaction and its commit — was most of what PostgreSQL spent on a text message (the
//! rows themselves were about a quarter). Under load the takes, the answers and the reads
//! (customers' records, threads, inboxes) of a moment therefore go out together, one
//! statement per kind: a [`Batches`] queue keeps at most `in_flight` statements of its kind
//! running, and everything that arrives meanwhile is the next statement. An idle node sends
//! each request at once, alone, as before.
//!
//! Two requests with the same key (the same customer) never share a statement — a row may
//! be changed once per statement — so the later one waits for the next; they keep their
//! order. A statement that fails is tried again one request at a time, so one bad request
//! (or a deadlock with another node's statement) costs the others nothing but time.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::StoreError;

/// Requests per statement at most.
pub(crate) const MAX_BATCH: usize = 64;

/// A request and where its answer goes.
struct Pending<R, T> {
    request: R,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

/// The queue of one kind of request (see the module's documentation).
pub(crate) struct Batches<R, T> {
    queue: mpsc::UnboundedSender<Pending<R, T>>,
}

/// Which requests may not share a statement: those with equal keys ([`key_of`] for text).
pub(crate) type KeyOf<R> = fn(&R) -> u64;

impl<R, T> Batches<R, T>
where
    R: Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Starts the queue on `runtime`. `run` sends one statement for every request of a
    /// batch, with a connection of `pool`, and answers each in the batch's order.
    pub(crate) fn start<F, Fut>(
        runtime: &tokio::runtime::Handle,
        pool: Pool,
        in_flight: usize,
        key: KeyOf<R>,
        run: F,
    ) -> Self
    where
        F: Fn(deadpool_postgres::Client, Arc<[R]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<T>, StoreError>> + Send + 'static,
    {
        let (queue, requests) = mpsc::unbounded_channel();
        runtime.spawn(send_batches(
            requests,
            Arc::new(Semaphore::new(in_flight.max(1))),
            pool,
            key,
            Arc::new(run),
        ));
        Batches { queue }
    }

    /// Sends `request` with the next statement of its kind and waits for its answer.
    pub(crate) async fn send(&self, request: R) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .map_err(|_| StoreError::Backend("the database runtime stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the database runtime stopped".into()))?
    }
}

/// The queue's task: while fewer than the semaphore's permits are running, sends what
/// waits as one statement.
async fn send_batches<R, T, F, Fut>(
    mut requests: mpsc::UnboundedReceiver<Pending<R, T>>,
    running: Arc<Semaphore>,
    pool: Pool,
    key: KeyOf<R>,
    run: Arc<F>,
) where
    R: Clone + Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(deadpool_postgres::Client, Arc<[R]>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<T>, StoreError>> + Send + 'static,
{
    let mut waiting: VecDeque<Pending<R, T>> = VecDeque::new();
    let mut open = true;
    loop {
        let Ok(permit) = running.clone().acquire_owned().await else {
            return;
        };
        if waiting.is_empty() {
            if !open {
                return;
            }
            match requests.recv().await {
                Some(pending) => waiting.push_back(pending),
                None => return,
            }
        }
        while open && waiting.len() < 4 * MAX_BATCH {
            match requests.try_recv() {
                Ok(pending) => waiting.push_back(pending),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let batch = next_batch(&mut waiting, key);
        let pool = pool.clone();
        let run = run.clone();
        tokio::spawn(async move {
            send_batch(&pool, run.as_ref(), batch).await;
            drop(permit);
        });
    }
}

/// Takes from `waiting`, in order, up to [`MAX_BATCH`] requests whose keys differ; the
/// others keep their places for the next batch.
fn next_batch<R, T>(waiting: &mut VecDeque<Pending<R, T>>, key: KeyOf<R>) -> Vec<Pending<R, T>> {
    let mut batch = Vec::with_capacity(waiting.len().min(MAX_BATCH));
    let mut keys = std::collections::HashSet::with_capacity(batch.capacity());
    let mut held = VecDeque::new();
    while let Some(pending) = waiting.pop_front() {
        if batch.len() == MAX_BATCH {
            held.push_back(pending);
            held.append(waiting);
            break;
        }
        if keys.insert(key(&pending.request)) {
            batch.push(pending);
        } else {
            held.push_back(pending);
        }
    }
    *waiting = held;
    batch
}

/// A text key's hash: two keys that collide only wait for separate statements.
pub(crate) fn key_of(key: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Sends one batch and answers its requests; a batch that fails is sent again one request
/// at a time, so each request gets its own outcome.
async fn send_batch<R, T, F, Fut>(pool: &Pool, run: &F, batch: Vec<Pending<R, T>>)
where
    R: Clone,
    F: Fn(deadpool_postgres::Client, Arc<[R]>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let requests: Arc<[R]> = batch.iter().map(|p| p.request.clone()).collect();
    let alone = batch.len() == 1;
    match run_once(pool, run, requests).await {
        Ok(answers) if answers.len() == batch.len() => {
            for (pending, answer) in batch.into_iter().zip(answers) {
                let _ = pending.reply.send(Ok(answer));
            }
        }
        outcome => {
            let err = match outcome {
                Err(err) => err,
                Ok(answers) => StoreError::Backend(format!(
                    "a batch of {} requests got {} answers",
                    batch.len(),
                    answers.len()
                )),
            };
            if alone {
                if let Some(pending) = batch.into_iter().next() {
                    let _ = pending.reply.send(Err(err));
                }
                return;
            }
            tracing::warn!(error = %err, requests = batch.len(), "a batched statement failed; sending its requests one at a time");
            for pending in batch {
                let one: Arc<[R]> = Arc::from(vec![pending.request]);
                let answer = run_once(pool, run, one).await.and_then(|answers| {
                    answers
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Backend("a request got no answer".into()))
                });
                let _ = pending.reply.send(answer);
            }
        }
    }
}

async fn run_once<R, T, F, Fut>(
    pool: &Pool,
    run: &F,
    requests: Arc<[R]>,
) -> Result<Vec<T>, StoreError>
where
    F: Fn(deadpool_postgres::Client, Arc<[R]>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let client = pool
        .get()
        .await
        .map_err(|err| StoreError::Backend(format!("no database connection: {err}")))?;
    run(client, requests).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(
        key: &str,
    ) -> (
        Pending<String, ()>,
        oneshot::Receiver<Result<(), StoreError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        (
            Pending {
                request: key.to_owned(),
                reply,
            },
            rx,
        )
    }

    // The queue's key function takes the request type itself.
    #[allow(clippy::ptr_arg)]
    fn key(request: &String) -> u64 {
        key_of(request)
    }

    fn keys(batch: &[Pending<String, ()>]) -> Vec<&str> {
        batch.iter().map(|p| p.request.as_str()).collect()
    }

    #[test]
    fn a_batch_takes_distinct_keys_in_order_and_the_rest_keep_theirs() {
        let mut waiting = VecDeque::new();
        let mut answers = Vec::new();
        for k in ["a", "b", "a", "c", "b", "a"] {
            let (p, rx) = pending(k);
            waiting.push_back(p);
            answers.push(rx);
        }
        let first = next_batch(&mut waiting, key);
        assert_eq!(keys(&first), ["a", "b", "c"]);
        let second = next_batch(&mut waiting, key);
        assert_eq!(keys(&second), ["a", "b"]);
        let third = next_batch(&mut waiting, key);
        assert_eq!(keys(&third), ["a"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_and_keeps_the_queue_order() {
        let mut waiting = VecDeque::new();
        let mut answers = Vec::new();
        for i in 0..MAX_BATCH + 10 {
            let (p, rx) = pending(&format!("k{i}"));
            waiting.push_back(p);
            answers.push(rx);
        }
        let first = next_batch(&mut waiting, key);
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(waiting.len(), 10);
        assert_eq!(
            waiting.front().map(|p| p.request.as_str()),
            Some(format!("k{MAX_BATCH}").as_str())
        );
    }
}
