//! Faults of the machine under the log: a full disk, and the log's
//! directory becoming read-only. While either lasts, publishes are refused
//! whole with `503 log_unavailable`, what was committed keeps being served
//! on open streams and to replays, and `readyz` is red; once the disk takes
//! writes again, `readyz` turns green by itself and publishing goes on, all
//! without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{Frame, PATIENCE, Reply, TestApp, ids_of, spawn_app_with};

/// Whether this is CI, where every fault must really be tested: a test that
/// cannot set its fault up fails there instead of skipping.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// Runs a setup command; `false` if it is missing or fails.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

/// A small tmpfs mounted for one test (needs root, as CI has), unmounted
/// after it.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (after saying so) where mounting is not allowed, outside CI.
    fn mount(test: &str, size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            if in_ci() {
                panic!("{test}: CI must be able to mount a tmpfs (it runs as root)");
            }
            eprintln!("SKIPPED {test}: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        // The last bytes, block by block.
        let byte = [0u8; 1];
        while file.write_all(&byte).is_ok() && file.flush().is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A small ext4 file system on a loop device, mounted for one test (needs
/// root, as CI has), for the read-only fault.
///
/// Why not a read-only remount, of a tmpfs or a bind mount: Linux refuses
/// to make a mount read-only while any file on it is open for writing
/// (`mount: mount point is busy`), and a running pushlog always holds its
/// database and WAL open for writing. So an operator cannot do that to a
/// live log; only the kernel can, after an I/O error, and then not
/// reversibly. Permission bits stop nothing either: they are checked when a
/// file is opened, not on each write through a descriptor already open, and
/// root ignores them. What does refuse every write through open
/// descriptors, to root as well, and can be undone, is ext4's immutable
/// attribute: `write` fails with `EPERM` as it would with `EROFS` on a
/// read-only file system, and nothing can be created in the directory.
struct LoopDisk {
    dir: tempfile::TempDir,
    _image: tempfile::TempDir,
}

impl LoopDisk {
    /// `None` (after saying so) where this is not allowed, outside CI.
    fn mount(test: &str) -> Option<LoopDisk> {
        let image_dir = tempfile::tempdir().expect("temp dir");
        let image = image_dir.path().join("disk.img");
        std::fs::File::create(&image)
            .and_then(|file| file.set_len(32 * 1024 * 1024))
            .expect("create the disk image");
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = run("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), image.as_ref()])
            && run(
                "mount",
                &[
                    "-o".as_ref(),
                    "loop".as_ref(),
                    image.as_ref(),
                    dir.path().as_ref(),
                ],
            );
        if !mounted {
            if in_ci() {
                panic!("{test}: CI must be able to mount an ext4 loop device (it runs as root)");
            }
            eprintln!("SKIPPED {test}: cannot mount an ext4 loop device here (not root?)");
            return None;
        }
        Some(LoopDisk {
            dir,
            _image: image_dir,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes `dir` and the log's files in it refuse every write. SQLite's
    /// `-shm` index is left alone: it is mapped into memory and holds
    /// nothing durable (SQLite rebuilds it from the WAL), and ext4 may
    /// answer a write to a mapped page of an immutable file with `SIGBUS`,
    /// which would kill the test process rather than test pushlog.
    fn make_read_only(dir: &Path) {
        Self::set_immutable(dir, "+i");
    }

    fn make_writable(dir: &Path) {
        Self::set_immutable(dir, "-i");
    }

    fn set_immutable(dir: &Path, flag: &str) {
        let db = dir.join("pushlog.db");
        let wal = dir.join("pushlog.db-wal");
        assert!(wal.exists(), "the log is in WAL mode");
        let targets = [dir, db.as_path(), wal.as_path()];
        let mut args: Vec<&std::ffi::OsStr> = vec![flag.as_ref()];
        args.extend(targets.iter().map(|path| path.as_os_str()));
        assert!(run("chattr", &args), "chattr {flag} on the log's files");
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        // Lazy: the app may still hold the files; the loop device goes
        // with the last of them.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn payload_event(n: usize) -> Value {
    json!({"topic": "disk", "type": "t", "payload": {"n": n, "pad": "x".repeat(8 * 1024)}})
}

async fn publish(app: &TestApp, n: usize) -> Reply {
    app.publish(&payload_event(n)).await
}

/// A batch of events under idempotency keys `{prefix}-0`, `{prefix}-1`, …
fn keyed_batch(prefix: &str, count: usize) -> Value {
    (0..count)
        .map(|n| json!({"topic": "disk", "type": "t", "key": format!("{prefix}-{n}"), "payload": {"n": n}}))
        .collect()
}

#[track_caller]
fn assert_log_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    assert_eq!(reply.error_code(), "log_unavailable", "{what}");
}

/// Polls `readyz` until it is green, as a load balancer would; panics
/// after `PATIENCE`.
async fn ready_again(app: &TestApp) {
    let started = tokio::time::Instant::now();
    loop {
        let reply = app.get("/readyz").await;
        if reply.status == 200 {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "readyz still red after {PATIENCE:?}: {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_full_disk_refuses_publishes_whole_and_recovers_without_a_restart() {
    let Some(disk) = SmallDisk::mount("full_disk", "4m") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("pushlog.db").display());
    let app = spawn_app_with(move |c| c.database_url = url).await;
    let mut stream = app.stream(&app.reader, "topics=disk", None).await;
    stream.opened().await;
    let first = publish(&app, 0).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first_id = first.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(stream.next_event().await.0, first_id);

    let filler = disk.fill();
    let mut acknowledged = vec![first_id];
    let mut refused = None;
    for n in 1..200 {
        let reply = publish(&app, n).await;
        match reply.status {
            201 => acknowledged.push(reply.body["events"][0]["id"].as_i64().expect("an id")),
            _ => {
                refused = Some(reply);
                break;
            }
        }
    }
    let refused = refused.expect("a publish is refused once the disk is full");
    assert_log_unavailable(&refused, "a publish on a full disk");
    // Reads still answer, but readiness tells that the log cannot write.
    assert_log_unavailable(&app.get("/readyz").await, "readyz on a full disk");
    assert_log_unavailable(
        &app.publish(&keyed_batch("full", 3)).await,
        "a keyed batch on a full disk",
    );

    // What was acknowledged is served, and nothing else was written.
    assert_eq!(app.all_ids().await, acknowledged);
    for id in &acknowledged[1..] {
        assert_eq!(stream.next_event().await.0, *id);
    }

    // Room again: readiness turns green by itself, with no publish to
    // find out, and publishing goes on, on the same stream, ids continuing.
    std::fs::remove_file(filler).expect("free the disk");
    ready_again(&app).await;
    let after = publish(&app, 999).await;
    assert_eq!(after.status, 201, "{}", after.body);
    let after_id = after.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(after_id, acknowledged.last().expect("ids") + 1);
    assert_eq!(stream.next_event().await.0, after_id);
    acknowledged.push(after_id);
    // The refused keyed batch was not remembered: sent again, it is new.
    let retried = app.publish(&keyed_batch("full", 3)).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    let retried = ids_of(&retried.body["events"]);
    assert_eq!(retried, crate::helpers::range(after_id + 1, after_id + 3));
    assert_eq!(stream.ids_through(after_id + 3).await, retried);
    acknowledged.extend(retried);
    assert_eq!(app.all_ids().await, acknowledged);
}

#[actix_web::test]
async fn a_read_only_log_directory_refuses_publishes_whole_and_recovers_without_a_restart() {
    let Some(disk) = LoopDisk::mount("read_only_directory") else {
        return;
    };
    let dir = disk.path().join("log");
    std::fs::create_dir(&dir).expect("the log's directory");
    let url = format!("sqlite://{}", dir.join("pushlog.db").display());
    let app = spawn_app_with(move |c| {
        c.database_url = url;
        // A heartbeat soon enough to see the stream alive during the fault.
        c.heartbeat_secs = 1;
    })
    .await;
    let mut stream = app.stream(&app.reader, "topics=disk", None).await;
    stream.opened().await;
    let first = app.publish(&keyed_batch("before", 1)).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first_id = ids_of(&first.body["events"])[0];
    assert_eq!(stream.next_event().await.0, first_id);
    assert_eq!(app.get("/readyz").await.status, 200);

    LoopDisk::make_read_only(&dir);
    let refused = app.publish(&keyed_batch("during", 3)).await;
    assert_log_unavailable(&refused, "a publish into a read-only directory");
    assert_log_unavailable(&app.get("/readyz").await, "readyz, read-only");
    // Still red on a second look: the probe write fails as the publish did.
    assert_log_unavailable(&app.get("/readyz").await, "readyz, read-only again");

    // The open stream stays open (its heartbeat goes on) and carries
    // nothing new; a new one replays what was committed; nothing of the
    // refused batch is in the log.
    assert_eq!(
        stream.next_frame().await,
        Some(Frame::Comment("ping".into()))
    );
    let mut replay = app.stream(&app.reader, "topics=disk", Some(0)).await;
    assert_eq!(replay.next_event().await.0, first_id);
    assert_eq!(app.all_ids().await, vec![first_id]);

    LoopDisk::make_writable(&dir);
    ready_again(&app).await;
    // The refused batch's keys were not remembered: sent again, it is
    // appended, whole, on the same stream; sent once more, it is a retry.
    let retried = app.publish(&keyed_batch("during", 3)).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    let ids = ids_of(&retried.body["events"]);
    assert_eq!(ids, crate::helpers::range(first_id + 1, first_id + 3));
    let again = app.publish(&keyed_batch("during", 3)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(ids_of(&again.body["events"]), ids);
    assert_eq!(stream.ids_through(first_id + 3).await, ids);
    assert_eq!(
        app.all_ids().await,
        crate::helpers::range(first_id, first_id + 3)
    );
}
