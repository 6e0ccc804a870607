//! Faults of the machine under the log: a full disk. Publishes are refused
//! whole while it lasts, what was committed keeps being served, and
//! everything recovers without a restart once there is room again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

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
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
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

fn payload_event(n: usize) -> serde_json::Value {
    json!({"topic": "disk", "type": "t", "payload": {"n": n, "pad": "x".repeat(8 * 1024)}})
}

async fn publish(app: &TestApp, n: usize) -> crate::helpers::Reply {
    app.publish(&payload_event(n)).await
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
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.error_code(), "log_unavailable");

    // What was acknowledged is served, and nothing else was written.
    assert_eq!(app.all_ids().await, acknowledged);
    for id in &acknowledged[1..] {
        assert_eq!(stream.next_event().await.0, *id);
    }

    // Room again: publishing goes on, on the same stream, ids continuing.
    std::fs::remove_file(filler).expect("free the disk");
    let after = publish(&app, 999).await;
    assert_eq!(after.status, 201, "{}", after.body);
    let after_id = after.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(after_id, acknowledged.last().expect("ids") + 1);
    assert_eq!(stream.next_event().await.0, after_id);
    acknowledged.push(after_id);
    assert_eq!(app.all_ids().await, acknowledged);
}
