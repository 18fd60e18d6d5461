//! The PostgreSQL state store: a plan's journals, its runner lease and its inbox in a database a
//! team shares (README, "Running as a team"; `docs/state.md`). The file store stays the default;
//! this one serves runners on machines that come and go.
//!
//! - A journal is one row per event, `(run_id, seq)`, holding the same JSON as a line of the file
//!   journal. Every append is one statement that also locks the plan's lease row and checks the
//!   runner's fencing token, so a runner that lost its lease cannot write another event.
//! - The lease (holder, host, pid, acquired, expires, token) is renewed every lease/3 on a thread
//!   of its own; its times are the database's clock, never a runner's. A released lease keeps its
//!   row and its token only grows, so an old token never matches again.
//! - The inbox is a table of requests bound to a run; the runner records in its (fenced) journal
//!   which it took, so each is taken once.
//!
//! The engine is synchronous where it writes: the pool lives on a runtime of its own, and every
//! call waits for its answer.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Row as _};

use crate::event::Record;
use crate::journal::inbox::Entry;
use crate::journal::replay::{self, Replay};
use crate::journal::{Header, Stolen};

/// The schema version this build reads and writes; `ion-plan state migrate` brings a database
/// to it.
pub const SCHEMA_VERSION: i32 = 1;

/// The migrations, in order: number `n` brings the schema from version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_state.sql")];

/// The default lease: a runner that dies is taken over this long after its last renewal.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Why the database cannot serve a command.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot use `{shown}` as the state store: {reason}")]
    Url { shown: String, reason: String },
    #[error("cannot connect to {shown}: {}", said(source))]
    Connect {
        shown: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "{shown} has no ion-plan tables: create them with `ion-plan state migrate --state {shown}`"
    )]
    NotMigrated { shown: String },
    #[error(
        "{shown} holds ion-plan schema version {found}, newer than this ion-plan knows ({SCHEMA_VERSION}): upgrade ion-plan"
    )]
    TooNew { shown: String, found: i32 },
    #[error(
        "{shown} holds ion-plan schema version {found}; this ion-plan needs {SCHEMA_VERSION}: run `ion-plan state migrate --state {shown}`"
    )]
    TooOld { shown: String, found: i32 },
    #[error("{what} in {shown}: {}", said(source))]
    Query {
        what: &'static str,
        shown: String,
        #[source]
        source: sqlx::Error,
    },
    /// Another runner holds the plan's lease.
    #[error("another runner is running this plan: {0}")]
    Held(String),
}

impl PgError {
    /// Whether it is a conflict over the state (exit 6) rather than a failure to reach or read
    /// it (exit 1).
    pub fn is_conflict(&self) -> bool {
        matches!(self, PgError::Held(_))
    }
}

/// A connection pool to the state database, on a runtime of its own.
pub struct Db {
    runtime: Option<tokio::runtime::Runtime>,
    pool: PgPool,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Dropping a runtime may not block inside another one (the engine's).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Whether `text` names a PostgreSQL store rather than a folder.
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The URL parameters the client understands (sqlx's `PgConnectOptions`, less `password`). Any
/// other is refused: the client would ignore it, so a misspelt `sslmode` would connect without
/// TLS.
const KNOWN_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "application_name",
    "options",
];

/// `url` without its password (in the user part or a `password=` parameter): what messages and
/// `status` show.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if parsed.query_pairs().any(|(key, _)| key == "password") {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(key, value)| {
                        let value = if key == "password" {
                            "***".into()
                        } else {
                            value
                        };
                        (key.into_owned(), value.into_owned())
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => "the --state URL".to_owned(),
    }
}

/// Why `parsed` may not be used, if it may not: a password in it, a parameter the client would
/// silently ignore, or a certificate or key file it names that cannot be read.
fn refused(parsed: &url::Url) -> Option<String> {
    if parsed.password().is_some() || parsed.query_pairs().any(|(key, _)| key == "password") {
        return Some(
            "it holds a password, which would show in `ps` and in logs: give it in PGPASSWORD or ~/.pgpass".to_owned(),
        );
    }
    // A certificate or key file that cannot be read fails at connect time as a bare "No such
    // file or directory": name the parameter and the file now.
    for (key, file) in parsed.query_pairs() {
        let is_file = matches!(
            key.as_ref(),
            "sslrootcert"
                | "ssl-root-cert"
                | "ssl-ca"
                | "sslcert"
                | "ssl-cert"
                | "sslkey"
                | "ssl-key"
        );
        if is_file && let Err(error) = std::fs::File::open(file.as_ref()) {
            return Some(format!("its {key} `{file}` cannot be read: {error}"));
        }
    }
    let unknown = parsed.query_pairs().map(|(key, _)| key).find(|key| {
        let known = KNOWN_PARAMETERS.contains(&key.as_ref())
            || (key.starts_with("options[") && key.ends_with(']'));
        !known
    })?;
    Some(format!(
        "it has the parameter `{unknown}`, which the client does not know (it would be ignored); known: {}",
        KNOWN_PARAMETERS.join(", ")
    ))
}

/// An error of the client or the server, worded for the person reading it: the server's own
/// message with its SQLSTATE (sqlx adds the server's source line, "at line 476", which reads as
/// a line of `pg_hba.conf`), a certificate the client does not trust with what to do about it.
fn said(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) => format!("the server says: {} (SQLSTATE {code})", e.message()),
            None => format!("the server says: {}", e.message()),
        },
        // rustls's refusals come as I/O errors of the connection.
        sqlx::Error::Tls(e) => with_tls_hint(&e.to_string()),
        sqlx::Error::Io(e) => with_tls_hint(&e.to_string()),
        other => other.to_string(),
    }
}

/// A certificate refusal with what to do about it; any other text as it is.
fn with_tls_hint(text: &str) -> String {
    let hint = if text.contains("UnknownIssuer") {
        ": the server's certificate is not signed by a CA this machine trusts; name the CA's certificate with `sslrootcert=FILE`"
    } else if text.contains("not valid for name") {
        ": connect by a name the certificate has, or check the CA alone with `sslmode=verify-ca`"
    } else {
        ""
    };
    format!("{text}{hint}")
}

fn query<'a>(what: &'static str, shown: &'a str) -> impl FnOnce(sqlx::Error) -> PgError + use<'a> {
    move |source| PgError::Query {
        what,
        shown: shown.to_owned(),
        source,
    }
}

/// A SQLSTATE of a database error, if it is one.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(e) => e.code().map(std::borrow::Cow::into_owned),
        _ => None,
    }
}

/// Whether the error is the connection's, not the statement's: worth a retry.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now, and the connection-exception class.
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| matches!(&*c, "57P01" | "57P02" | "57P03") || c.starts_with("08")),
        _ => false,
    }
}

/// How long connecting may take before a command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection to `options` cannot be made, when the pool timed out making one.
async fn why_not(options: &PgConnectOptions) -> sqlx::Error {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Err(error)) => error,
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
            sqlx::Error::PoolTimedOut
        }
        Err(_) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        )),
    }
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Db {
    /// Connects to `url` (a `postgres://` URL; `sslmode`, PGPASSWORD and `~/.pgpass` as libpq
    /// reads them). A password in the URL is refused: it would show in `ps` and in CI logs.
    pub fn connect(url: &str) -> Result<Arc<Db>, PgError> {
        let shown = shown(url);
        let bad = |reason: String| PgError::Url {
            shown: shown.clone(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if let Some(reason) = refused(&parsed) {
            return Err(bad(reason));
        }
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| bad(e.to_string()))?
            .application_name("ion-plan")
            .disable_statement_logging();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ion-plan-db")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start its client: {e}")))?;
        // Connected on the store's own runtime: the caller may be inside another one.
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        let connecting = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone());
        runtime.spawn(async move {
            let connected = match connecting.await {
                // The pool says only that it timed out; one connection of our own says why (a
                // refused port, an unknown host, a server that does not answer).
                Err(sqlx::Error::PoolTimedOut) => Err(why_not(&options).await),
                other => other,
            };
            let _ = send.send(connected);
        });
        let pool = receive
            .recv()
            .map_err(|e| bad(format!("its client stopped: {e}")))?
            .map_err(|source| PgError::Connect {
                shown: shown.clone(),
                source,
            })?;
        Ok(Arc::new(Db {
            runtime: Some(runtime),
            pool,
            shown,
        }))
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `future` on the pool's runtime and waits for it.
    fn block<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as Db");
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = send.send(future.await);
        });
        receive
            .recv()
            .expect("the database runtime answers every call")
    }

    /// Creates or upgrades the tables; returns the versions before and after. Two migrations at
    /// once wait for each other (an advisory lock).
    pub fn migrate(&self) -> Result<(i32, i32), PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        self.block(async move {
            let fail = |what| query(what, &shown);
            let mut tx = pool.begin().await.map_err(fail("begin"))?;
            sqlx::query("SELECT pg_advisory_xact_lock(7319202611)")
                .execute(&mut *tx)
                .await
                .map_err(fail("lock for migration"))?;
            sqlx::query("CREATE TABLE IF NOT EXISTS ion_plan_schema (version integer NOT NULL)")
                .execute(&mut *tx)
                .await
                .map_err(fail("create ion_plan_schema"))?;
            let found: Option<i32> = sqlx::query_scalar("SELECT version FROM ion_plan_schema")
                .fetch_optional(&mut *tx)
                .await
                .map_err(fail("read the schema version"))?;
            if found.is_none() {
                sqlx::query("INSERT INTO ion_plan_schema (version) VALUES (0)")
                    .execute(&mut *tx)
                    .await
                    .map_err(fail("write the schema version"))?;
            }
            let from = found.unwrap_or(0);
            if from > SCHEMA_VERSION {
                return Err(PgError::TooNew {
                    shown: shown.clone(),
                    found: from,
                });
            }
            for (index, &sql) in MIGRATIONS
                .iter()
                .enumerate()
                .skip(from.unsigned_abs() as usize)
            {
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail("apply a migration"))?;
                sqlx::query("UPDATE ion_plan_schema SET version = $1")
                    .bind(i32::try_from(index + 1).unwrap_or(i32::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail("write the schema version"))?;
            }
            tx.commit().await.map_err(fail("commit the migration"))?;
            Ok((from, SCHEMA_VERSION))
        })
    }

    /// Refuses a database without tables, or with a schema this build does not know.
    pub fn check_schema(&self) -> Result<(), PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        self.block(async move {
            let found: Result<Option<i32>, sqlx::Error> =
                sqlx::query_scalar("SELECT version FROM ion_plan_schema")
                    .fetch_optional(&pool)
                    .await;
            match found {
                Ok(Some(SCHEMA_VERSION)) => Ok(()),
                Ok(Some(found)) if found > SCHEMA_VERSION => Err(PgError::TooNew { shown, found }),
                Ok(Some(found)) if found > 0 => Err(PgError::TooOld { shown, found }),
                Ok(_) => Err(PgError::NotMigrated { shown }),
                Err(e) if sqlstate(&e).as_deref() == Some("42P01") => {
                    Err(PgError::NotMigrated { shown })
                }
                Err(source) => Err(PgError::Query {
                    what: "read the schema version",
                    shown,
                    source,
                }),
            }
        })
    }

    /// Where a run's journal is, for messages: the database and the run.
    pub fn location(&self, run_id: &str) -> PathBuf {
        PathBuf::from(format!("{} (run {run_id})", self.shown))
    }

    /// The ids of `plan`'s runs, oldest first.
    pub fn run_ids(&self, plan: &str) -> Result<Vec<String>, PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let plan = plan.to_owned();
        self.block(async move {
            sqlx::query_scalar("SELECT run_id FROM ion_plan_runs WHERE plan = $1 ORDER BY run_id")
                .bind(plan)
                .fetch_all(&pool)
                .await
                .map_err(query("list runs", &shown))
        })
    }

    /// A run's journal read back, checked as a file journal is; `None` if there is no such run
    /// of `plan`.
    pub fn read_run(
        &self,
        plan: &str,
        run_id: &str,
    ) -> Result<Option<Replay>, crate::journal::store::StoreError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let (plan, id) = (plan.to_owned(), run_id.to_owned());
        let rows = self.block(async move {
            let header: Option<String> = sqlx::query_scalar(
                "SELECT header::text FROM ion_plan_runs WHERE plan = $1 AND run_id = $2",
            )
            .bind(&plan)
            .bind(&id)
            .fetch_optional(&pool)
            .await
            .map_err(query("read a run", &shown))?;
            let Some(header) = header else {
                return Ok(None);
            };
            let records: Vec<String> = sqlx::query_scalar(
                "SELECT record::text FROM ion_plan_events WHERE run_id = $1 ORDER BY seq",
            )
            .bind(&id)
            .fetch_all(&pool)
            .await
            .map_err(query("read a journal", &shown))?;
            Ok::<_, PgError>(Some((header, records)))
        })?;
        let Some((header, records)) = rows else {
            return Ok(None);
        };
        // The same bytes as a file journal, read by the same checks.
        let mut bytes = Vec::with_capacity(
            header.len() + records.iter().map(String::len).sum::<usize>() + records.len() + 1,
        );
        for line in std::iter::once(&header).chain(&records) {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        Ok(Some(replay::parse(&self.location(run_id), &bytes)?))
    }

    /// The plan text a run started from.
    pub fn plan_text(&self, run_id: &str) -> Option<String> {
        let pool = self.pool.clone();
        let id = run_id.to_owned();
        self.block(async move {
            sqlx::query_scalar("SELECT plan_text FROM ion_plan_runs WHERE run_id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
        })
    }

    /// Who holds `plan`'s lease now, if anyone.
    pub fn holder(&self, plan: &str) -> Result<Option<String>, PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let plan = plan.to_owned();
        self.block(async move {
            let row = sqlx::query(
                "SELECT holder, host, pid, acquired, expires FROM ion_plan_leases
                 WHERE plan = $1 AND expires > now()",
            )
            .bind(plan)
            .fetch_optional(&pool)
            .await
            .map_err(query("read the lease", &shown))?;
            Ok(row.map(|row| {
                let holder: String = row.get(0);
                let host: String = row.get(1);
                let pid: i32 = row.get(2);
                let acquired: DateTime<Utc> = row.get(3);
                let expires: DateTime<Utc> = row.get(4);
                format!(
                    "{holder}, pid {pid} on {host} since {}, lease until {}",
                    acquired.format("%Y-%m-%d %H:%M:%SZ"),
                    expires.format("%Y-%m-%d %H:%M:%SZ")
                )
            }))
        })
    }

    /// Takes `plan`'s lease if nobody holds it (or its holder let it expire), and keeps renewing
    /// it every `length / 3` until the returned [`Lease`] is dropped.
    pub fn lease(self: &Arc<Self>, plan: &str, length: Duration) -> Result<Lease, PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let key = plan.to_owned();
        let holder = crate::engine::who();
        let host = crate::journal::lock::host();
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let asked = Instant::now();
        let token = self.block(async move {
            let token: Option<i64> = sqlx::query_scalar(
                "INSERT INTO ion_plan_leases AS l (plan, holder, host, pid, acquired, expires, token)
                 VALUES ($1, $2, $3, $4, now(), now() + $5 * interval '1 millisecond', 1)
                 ON CONFLICT (plan) DO UPDATE SET holder = excluded.holder, host = excluded.host,
                     pid = excluded.pid, acquired = now(), expires = excluded.expires,
                     token = l.token + 1
                 WHERE l.expires <= now()
                 RETURNING token",
            )
            .bind(&key)
            .bind(holder)
            .bind(host)
            .bind(pid)
            .bind(ms(length))
            .fetch_optional(&pool)
            .await
            .map_err(query("take the lease", &shown))?;
            Ok::<_, PgError>(token)
        })?;
        let Some(token) = token else {
            let holder = self
                .holder(plan)?
                .unwrap_or_else(|| "a runner whose lease just ended; try again".to_owned());
            return Err(PgError::Held(holder));
        };
        let shared = Arc::new(LeaseState {
            valid_until: Mutex::new(asked + length),
            lost: AtomicBool::new(false),
            stop: (Mutex::new(false), Condvar::new()),
        });
        let renewer = {
            let db = Arc::clone(self);
            let shared = Arc::clone(&shared);
            let plan = plan.to_owned();
            std::thread::Builder::new()
                .name("ion-plan-lease".to_owned())
                .spawn(move || renew_until_stopped(&db, &plan, token, length, &shared))
                .ok()
        };
        Ok(Lease {
            db: Arc::clone(self),
            plan: plan.to_owned(),
            token,
            length,
            shared,
            renewer,
        })
    }

    /// Expires the lease (`plan`, `token`) now, keeping its token: the next runner need not wait
    /// it out.
    fn expire(&self, plan: &str, token: i64) {
        let pool = self.pool.clone();
        let plan = plan.to_owned();
        let _ = self.block(async move {
            sqlx::query("UPDATE ion_plan_leases SET expires = now() WHERE plan = $1 AND token = $2")
                .bind(plan)
                .bind(token)
                .execute(&pool)
                .await
        });
    }

    /// Renews a lease: `Ok(false)` if it is not this token's any more, or expired.
    fn renew(&self, plan: &str, token: i64, length: Duration) -> Result<bool, sqlx::Error> {
        let pool = self.pool.clone();
        let plan = plan.to_owned();
        self.block(async move {
            let renewed = sqlx::query(
                "UPDATE ion_plan_leases SET expires = now() + $3 * interval '1 millisecond'
                 WHERE plan = $1 AND token = $2 AND expires > now()",
            )
            .bind(plan)
            .bind(token)
            .bind(ms(length))
            .execute(&pool)
            .await?;
            Ok(renewed.rows_affected() == 1)
        })
    }

    /// Starts a run: its header and plan text, written only under the lease.
    pub fn create_run(
        &self,
        lease: &Lease,
        header: &Header,
        name: &str,
        plan_text: &str,
    ) -> Result<(), PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let (plan, token) = (lease.plan.clone(), lease.token);
        let header_json = serde_json::to_string(header).unwrap_or_default();
        let (run_id, created) = (header.run_id.clone(), header.created);
        let (name, text) = (name.to_owned(), plan_text.to_owned());
        let written = self.block(async move {
            sqlx::query(
                "WITH lease AS (SELECT 1 FROM ion_plan_leases
                                WHERE plan = $1 AND token = $2 AND expires > now() FOR SHARE)
                 INSERT INTO ion_plan_runs (run_id, plan, name, header, plan_text, created)
                 SELECT $3, $1, $4, $5::json, $6, $7 FROM lease",
            )
            .bind(plan)
            .bind(token)
            .bind(run_id)
            .bind(name)
            .bind(header_json)
            .bind(text)
            .bind(created)
            .execute(&pool)
            .await
            .map_err(query("start a run", &shown))
        })?;
        if written.rows_affected() == 1 {
            Ok(())
        } else {
            Err(PgError::Held(format!(
                "this runner's lease on `{}` ended before the run started",
                lease.plan
            )))
        }
    }

    /// Appends one record under the lease (`plan`, `token`). `Ok(false)`: the lease is not this
    /// runner's any more, nothing was written.
    async fn append_once(
        pool: PgPool,
        plan: String,
        token: i64,
        run_id: String,
        record: Record,
        line: String,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "WITH lease AS (SELECT 1 FROM ion_plan_leases
                            WHERE plan = $1 AND token = $2 AND expires > now() FOR SHARE)
             INSERT INTO ion_plan_events (run_id, seq, at, record)
             SELECT $3, $4, $5, $6::json FROM lease",
        )
        .bind(&plan)
        .bind(token)
        .bind(&run_id)
        .bind(i64::try_from(record.seq).unwrap_or(i64::MAX))
        .bind(record.at)
        .bind(&line)
        .execute(&pool)
        .await;
        match inserted {
            Ok(done) => Ok(done.rows_affected() == 1),
            // The same record already there: a retry of an append whose answer was lost.
            Err(e) if sqlstate(&e).as_deref() == Some("23505") => {
                let there: Option<String> = sqlx::query_scalar(
                    "SELECT record::text FROM ion_plan_events WHERE run_id = $1 AND seq = $2",
                )
                .bind(&run_id)
                .bind(i64::try_from(record.seq).unwrap_or(i64::MAX))
                .fetch_optional(&pool)
                .await?;
                let same = there
                    .and_then(|t| serde_json::from_str::<Record>(&t).ok())
                    .is_some_and(|there| there == record);
                if same { Ok(true) } else { Err(e) }
            }
            Err(e) => Err(e),
        }
    }

    /// Appends a request to `plan`'s inbox.
    pub fn inbox_append(&self, plan: &str, entry: &Entry) -> Result<(), PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let plan = plan.to_owned();
        let json = serde_json::to_string(entry).unwrap_or_default();
        let (id, run_id, at) = (entry.id.clone(), entry.run_id.clone(), entry.at);
        self.block(async move {
            sqlx::query(
                "INSERT INTO ion_plan_inbox (id, plan, run_id, at, entry) VALUES ($1, $2, $3, $4, $5::json)",
            )
            .bind(id)
            .bind(plan)
            .bind(run_id)
            .bind(at)
            .bind(json)
            .execute(&pool)
            .await
            .map(drop)
            .map_err(query("record the request", &shown))
        })
    }

    /// The requests for `run_id`, oldest first. An unreadable row is skipped (and cannot be
    /// taken), as a torn line of the file inbox is.
    pub fn inbox_read(&self, plan: &str, run_id: &str) -> Result<Vec<Entry>, PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let (plan, id) = (plan.to_owned(), run_id.to_owned());
        let rows: Vec<String> = self.block(async move {
            sqlx::query_scalar(
                "SELECT entry::text FROM ion_plan_inbox WHERE plan = $1 AND run_id = $2 ORDER BY at, id",
            )
            .bind(plan)
            .bind(id)
            .fetch_all(&pool)
            .await
            .map_err(query("read the inbox", &shown))
        })?;
        Ok(rows
            .iter()
            .filter_map(|row| serde_json::from_str(row).ok())
            .collect())
    }

    /// The runs, newest first, at most `limit`, of the plan keyed or named `plan` if given.
    pub fn runs(&self, plan: Option<&str>, limit: i64) -> Result<Vec<(String, String)>, PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let plan = plan.map(str::to_owned);
        self.block(async move {
            let rows = sqlx::query(
                "SELECT plan, run_id FROM ion_plan_runs
                 WHERE $1::text IS NULL OR plan = $1 OR name = $1
                 ORDER BY run_id DESC LIMIT $2",
            )
            .bind(plan)
            .bind(limit)
            .fetch_all(&pool)
            .await
            .map_err(query("list runs", &shown))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// Copies one file journal into the store, unless its run is there already: `Ok(false)`.
    /// A whole run goes in one transaction.
    pub fn import(
        &self,
        plan: &str,
        name: Option<&str>,
        replay: &Replay,
        plan_text: &str,
    ) -> Result<bool, PgError> {
        let pool = self.pool.clone();
        let shown = self.shown.clone();
        let plan = plan.to_owned();
        let name = name.map(str::to_owned);
        let header = serde_json::to_string(&replay.header).unwrap_or_default();
        let header_fields = (replay.header.run_id.clone(), replay.header.created);
        let text = plan_text.to_owned();
        let records: Vec<(i64, DateTime<Utc>, String)> = replay
            .records
            .iter()
            .map(|r| {
                (
                    i64::try_from(r.seq).unwrap_or(i64::MAX),
                    r.at,
                    serde_json::to_string(r).unwrap_or_default(),
                )
            })
            .collect();
        self.block(async move {
            let fail = |what| query(what, &shown);
            let mut tx = pool.begin().await.map_err(fail("begin"))?;
            let inserted = sqlx::query(
                "INSERT INTO ion_plan_runs (run_id, plan, name, header, plan_text, created)
                 VALUES ($1, $2, $3, $4::json, $5, $6) ON CONFLICT (run_id) DO NOTHING",
            )
            .bind(&header_fields.0)
            .bind(&plan)
            .bind(name)
            .bind(header)
            .bind(text)
            .bind(header_fields.1)
            .execute(&mut *tx)
            .await
            .map_err(fail("import a run"))?;
            if inserted.rows_affected() == 0 {
                return Ok(false);
            }
            for (seq, at, line) in records {
                sqlx::query(
                    "INSERT INTO ion_plan_events (run_id, seq, at, record) VALUES ($1, $2, $3, $4::json)",
                )
                .bind(&header_fields.0)
                .bind(seq)
                .bind(at)
                .bind(line)
                .execute(&mut *tx)
                .await
                .map_err(fail("import an event"))?;
            }
            tx.commit().await.map_err(fail("commit the import"))?;
            Ok(true)
        })
    }
}

/// What the lease's holder and its renewal thread share.
#[derive(Debug)]
struct LeaseState {
    /// Until when the lease is surely this runner's, on this machine's monotonic clock (counted
    /// from before the last renewal was asked for).
    valid_until: Mutex<Instant>,
    lost: AtomicBool,
    stop: (Mutex<bool>, Condvar),
}

fn renew_until_stopped(db: &Db, plan: &str, token: i64, length: Duration, shared: &LeaseState) {
    let (stop, wake) = &shared.stop;
    loop {
        {
            let Ok(stopped) = stop.lock() else { return };
            let Ok((stopped, _)) = wake.wait_timeout_while(stopped, length / 3, |s| !*s) else {
                return;
            };
            if *stopped {
                return;
            }
        }
        let asked = Instant::now();
        match db.renew(plan, token, length) {
            Ok(true) => {
                if let Ok(mut until) = shared.valid_until.lock() {
                    *until = asked + length;
                }
            }
            Ok(false) => {
                shared.lost.store(true, Ordering::SeqCst);
                eprintln!(
                    "ion-plan: the lease on `{plan}` is no longer this runner's (it expired or another runner took it over): stopping before the next effect"
                );
                return;
            }
            // The database is away: try again at the next tick; the lease may still hold.
            Err(_) => {}
        }
    }
}

/// One runner's hold on a plan, renewed while it lives; released (its row kept, its token
/// retired) when dropped.
#[derive(Debug)]
pub struct Lease {
    db: Arc<Db>,
    plan: String,
    token: i64,
    length: Duration,
    shared: Arc<LeaseState>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    /// The fencing token: every write of this runner carries it.
    pub fn token(&self) -> i64 {
        self.token
    }

    pub fn length(&self) -> Duration {
        self.length
    }

    /// What an effect checks right before it happens (after its start was journaled).
    pub fn hold(&self) -> Hold {
        Hold {
            plan: self.plan.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// A journal that appends to `run_id` under this lease.
    pub fn journal(&self, run_id: &str, last_seq: u64) -> PgJournal {
        PgJournal {
            db: Arc::clone(&self.db),
            plan: self.plan.clone(),
            token: self.token,
            run_id: run_id.to_owned(),
            seq: last_seq,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        stop_renewing(&self.shared);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        self.db.expire(&self.plan, self.token);
    }
}

/// Stops a lease's renewal thread.
fn stop_renewing(shared: &LeaseState) {
    let (stop, wake) = &shared.stop;
    if let Ok(mut stopped) = stop.lock() {
        *stopped = true;
    }
    wake.notify_all();
}

/// The last check before an effect: a runner frozen (SIGSTOP, a suspended VM) between
/// journaling a step's start and running it finds, on waking, that its lease may have passed to
/// another runner, and runs nothing. Local and cheap: the monotonic clock against the last
/// renewal.
#[derive(Debug, Clone)]
pub struct Hold {
    plan: String,
    shared: Arc<LeaseState>,
}

impl Hold {
    /// Whether the database said the lease is no longer this runner's (taken over, or expired
    /// while the runner was frozen or the database away): a wait for a person ends, and the
    /// run stops without running anything more.
    pub fn lost(&self) -> Option<String> {
        self.shared.lost.load(Ordering::SeqCst).then(|| {
            format!(
                "this runner's lease on `{}` expired or was taken over while it waited; it stopped without running anything more",
                self.plan
            )
        })
    }

    pub fn check(&self) -> Result<(), String> {
        let until = self
            .shared
            .valid_until
            .lock()
            .map_or_else(|_| Instant::now(), |u| *u);
        if self.shared.lost.load(Ordering::SeqCst) || Instant::now() >= until {
            return Err(format!(
                "not started: this runner's lease on `{}` may have passed to another runner",
                self.plan
            ));
        }
        Ok(())
    }
}

/// A run's journal in the database, appending under the runner's lease.
#[derive(Debug)]
pub struct PgJournal {
    db: Arc<Db>,
    plan: String,
    token: i64,
    run_id: String,
    seq: u64,
    shared: Arc<LeaseState>,
}

impl PgJournal {
    pub fn location(&self) -> PathBuf {
        self.db.location(&self.run_id)
    }

    /// The number of the last record written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Lets the runner's lease go at once, for a runner stopped by a signal whose processes
    /// are ended: the next runner need not wait out the lease. Nothing is written after.
    pub fn release(&self) {
        self.shared.lost.store(true, Ordering::SeqCst);
        stop_renewing(&self.shared);
        self.db.expire(&self.plan, self.token);
    }

    /// Appends a record once it is committed. While the database is unreachable it retries, as
    /// long as the lease surely holds; a lease lost is [`Stolen`]: the runner stops before its
    /// next effect.
    pub fn write_record(&mut self, record: &Record) -> std::io::Result<()> {
        let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        if line.len() > crate::journal::MAX_LINE {
            return Err(std::io::Error::other(format!(
                "journal line of {} bytes is over the {}-byte limit",
                line.len(),
                crate::journal::MAX_LINE
            )));
        }
        let lost = || {
            std::io::Error::other(Stolen(format!(
                "this runner's lease on `{}` in {} expired or was taken over; stopping before the next effect",
                self.plan,
                self.db.shown()
            )))
        };
        if self.shared.lost.load(Ordering::SeqCst) {
            return Err(lost());
        }
        let mut wait = Duration::from_millis(100);
        loop {
            let attempt = Db::append_once(
                self.db.pool.clone(),
                self.plan.clone(),
                self.token,
                self.run_id.clone(),
                record.clone(),
                line.clone(),
            );
            match self.db.block(attempt) {
                Ok(true) => {
                    self.seq = record.seq;
                    return Ok(());
                }
                Ok(false) => {
                    self.shared.lost.store(true, Ordering::SeqCst);
                    return Err(lost());
                }
                Err(error) if is_transient(&error) => {
                    let until = self
                        .shared
                        .valid_until
                        .lock()
                        .map_or_else(|_| Instant::now(), |u| *u);
                    if Instant::now() + wait >= until {
                        // Past here another runner may hold the plan: this one must not act
                        // again, as when its lease is taken (exit 6), and the next runner
                        // resumes from what was committed.
                        self.shared.lost.store(true, Ordering::SeqCst);
                        return Err(std::io::Error::other(Stolen(format!(
                            "cannot write the journal to {} ({}) before this runner's lease on `{}` could pass to another runner; stopping before the next effect",
                            self.db.shown(),
                            said(&error),
                            self.plan
                        ))));
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(error) => {
                    return Err(std::io::Error::other(format!(
                        "cannot write the journal to {}: {}",
                        self.db.shown(),
                        said(&error)
                    )));
                }
            }
        }
    }
}
