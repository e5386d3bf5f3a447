use super::*;

fn engine() -> Engine {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).unwrap()
}

/// The smallest valid component: just the header.
fn wasm() -> Vec<u8> {
    vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn outcome(engine: &Engine, bytes: &[u8], dir: &Path) -> CacheOutcome {
    compile(engine, bytes, Some(dir)).unwrap().1
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn stores_then_hits() {
    let (engine, bytes, dir) = (engine(), wasm(), temp_dir("hit"));
    assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Stored);
    assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Hit);
    // The key and one entry; no temporary files are left behind.
    let names = names(&dir);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&KEY_FILE.to_owned()), "{names:?}");
}

#[test]
fn corrupt_or_truncated_entries_are_recompiled_not_trusted() {
    let (engine, bytes, dir) = (engine(), wasm(), temp_dir("corrupt"));
    compile(&engine, &bytes, Some(&dir)).unwrap();
    let path = entry_path(&dir, &key(&engine, &bytes, None));
    let mut file = std::fs::read(&path).unwrap();
    let last = file.len() - 1;
    file[last] ^= 0xff;
    std::fs::write(&path, &file).unwrap();
    assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Replaced);
    assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Hit);
    std::fs::write(&path, &file[..40]).unwrap();
    assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Replaced);
}

#[test]
fn unwritable_cache_compiles_in_memory() {
    let (engine, bytes) = (engine(), wasm());
    // A directory below a regular file can never be created (even by root).
    let file = temp_dir("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dir = file.join("cache");
    assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Unwritable);
}

#[test]
fn keys_depend_on_bytes_and_variant() {
    let engine = engine();
    assert_ne!(key(&engine, b"a", None), key(&engine, b"b", None));
    assert_ne!(key(&engine, b"a", None), key(&engine, b"a", Some("x")));
    assert_ne!(key(&engine, b"a", Some("x")), key(&engine, b"a", Some("y")));
    assert_eq!(key(&engine, b"a", None).len(), 64);
}

#[test]
fn a_prepared_variant_is_cached_apart_and_prepared_only_on_a_miss() {
    let (engine, bytes, dir) = (engine(), wasm(), temp_dir("prepared"));
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let run = |input: &[u8]| {
        runs.fetch_add(1, Ordering::Relaxed);
        Ok(input.to_vec())
    };
    let prepare = Prepare {
        name: "test",
        run: &run,
    };
    let outcome = |prepare| {
        compile_prepared(&engine, &bytes, Some(&dir), prepare)
            .unwrap()
            .1
    };
    assert_eq!(outcome(Some(&prepare)), CacheOutcome::Stored);
    assert_eq!(outcome(Some(&prepare)), CacheOutcome::Hit);
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    // The plain compile has an entry of its own.
    assert_eq!(outcome(None), CacheOutcome::Stored);
    // A failing preparation is an error, not a cached entry.
    let failing = |_: &[u8]| Err(wasmtime::format_err!("no"));
    let broken = Prepare {
        name: "broken",
        run: &failing,
    };
    assert!(compile_prepared(&engine, &bytes, Some(&dir), Some(&broken)).is_err());
    // The key and two entries.
    assert_eq!(names(&dir).len(), 3);
}

/// Trust checks: ownership and permission bits (Unix).
#[cfg(unix)]
mod trust {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn the_directory_key_and_entries_are_private() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("private"));
        compile(&engine, &bytes, Some(&dir)).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&entry_path(&dir, &key(&engine, &bytes, None))), 0o600);
        assert_eq!(std::fs::read(dir.join(KEY_FILE)).unwrap().len(), KEY_LEN);
        check_trust(&dir).unwrap();
    }

    #[test]
    fn a_group_or_other_writable_directory_is_refused() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("writable"));
        compile(&engine, &bytes, Some(&dir)).unwrap();
        for bits in [0o770, 0o707, 0o777] {
            chmod(&dir, bits);
            assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Untrusted);
            let err = check_trust(&dir).unwrap_err();
            assert!(matches!(err, TrustError::Mode { .. }), "{err}");
            assert!(
                err.to_string().contains("writable by group or others"),
                "{err}"
            );
        }
        chmod(&dir, 0o700);
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Hit);
    }

    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        let (engine, bytes) = (engine(), wasm());
        // SAFETY: geteuid cannot fail.
        #[allow(unsafe_code, reason = "geteuid is always safe")]
        let root = unsafe { libc::geteuid() } == 0;
        let dir = if root {
            // As root: hand a fresh cache to nobody.
            let dir = temp_dir("foreign");
            compile(&engine, &bytes, Some(&dir)).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            dir
        } else {
            // As anyone else: a private directory root owns.
            let dir = PathBuf::from("/root");
            assert_eq!(std::fs::metadata(&dir).unwrap().uid(), 0);
            dir
        };
        let err = check_trust(&dir).unwrap_err();
        assert!(matches!(err, TrustError::Owner { .. }), "{err}");
        assert!(err.to_string().contains("owned by uid"), "{err}");
        if root {
            assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Untrusted);
        }
    }

    #[test]
    fn a_key_others_can_read_or_a_symlinked_key_is_refused() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("key"));
        compile(&engine, &bytes, Some(&dir)).unwrap();
        let key_file = dir.join(KEY_FILE);
        chmod(&key_file, 0o644);
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Untrusted);
        assert!(matches!(
            check_trust(&dir).unwrap_err(),
            TrustError::Mode { .. }
        ));
        chmod(&key_file, 0o600);
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Hit);

        // A key elsewhere, linked in: never followed.
        let elsewhere = temp_dir("key-elsewhere");
        std::fs::rename(&key_file, &elsewhere).unwrap();
        symlink(&elsewhere, &key_file).unwrap();
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Untrusted);
        let err = check_trust(&dir).unwrap_err();
        assert!(matches!(err, TrustError::Symlink { .. }), "{err}");

        // A key of the wrong length.
        std::fs::remove_file(&key_file).unwrap();
        std::fs::write(&key_file, b"short").unwrap();
        chmod(&key_file, 0o600);
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Untrusted);
        assert!(matches!(
            check_trust(&dir).unwrap_err(),
            TrustError::KeyLength { len: 5, .. }
        ));
    }

    #[test]
    fn a_symlinked_entry_is_replaced_and_its_target_left_alone() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("link"));
        compile(&engine, &bytes, Some(&dir)).unwrap();
        let entry = entry_path(&dir, &key(&engine, &bytes, None));
        // A valid entry, moved out and linked back in: a link is refused
        // even when what it points at would verify.
        let target = temp_dir("link-target");
        std::fs::rename(&entry, &target).unwrap();
        let before = std::fs::read(&target).unwrap();
        symlink(&target, &entry).unwrap();
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Replaced);
        assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
        assert_eq!(std::fs::read(&target).unwrap(), before);
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Hit);
    }

    #[test]
    fn a_writable_entry_is_replaced() {
        let (engine, bytes, dir) = (engine(), wasm(), temp_dir("entry-mode"));
        compile(&engine, &bytes, Some(&dir)).unwrap();
        let entry = entry_path(&dir, &key(&engine, &bytes, None));
        chmod(&entry, 0o666);
        assert_eq!(outcome(&engine, &bytes, &dir), CacheOutcome::Replaced);
        assert_eq!(mode(&entry), 0o600);
    }

    #[test]
    fn an_entry_written_with_another_key_is_not_loaded() {
        // Someone who can write the directory but not read its key copies
        // in an entry made elsewhere (or forges one with a plain hash, as
        // the previous format had): it does not verify.
        let (engine, bytes) = (engine(), wasm());
        let (ours, theirs) = (temp_dir("mac-ours"), temp_dir("mac-theirs"));
        compile(&engine, &bytes, Some(&ours)).unwrap();
        compile(&engine, &bytes, Some(&theirs)).unwrap();
        let name = key(&engine, &bytes, None);
        std::fs::copy(entry_path(&theirs, &name), entry_path(&ours, &name)).unwrap();
        assert_eq!(outcome(&engine, &bytes, &ours), CacheOutcome::Replaced);

        let payload = compile(&engine, &bytes, None)
            .unwrap()
            .0
            .serialize()
            .unwrap();
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&Sha256::digest(&payload));
        forged.extend_from_slice(&payload);
        std::fs::write(entry_path(&ours, &name), forged).unwrap();
        assert_eq!(outcome(&engine, &bytes, &ours), CacheOutcome::Replaced);
        assert_eq!(outcome(&engine, &bytes, &ours), CacheOutcome::Hit);
    }
}
