//! Hostile plugins, written in WAT: each is contained with its named error,
//! the host stays alive, and a well-behaved plugin runs right after.

use std::sync::Arc;
use std::time::Duration;

use atlas_plugin_host::{Abi, Host, Limits, Plugin, PluginError};

/// A module with the ABI's exports; `transform` is the body of
/// `atlas_transform`, `extra` adds items to the module.
fn module(transform: &str, extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  {extra}
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (func (export "atlas_abi_version") (result i32) i32.const 1)
  (func (export "atlas_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (if (i32.gt_u (i32.add (local.get $p) (local.get $len)) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (local.get $len) (i32.const 65536)) (i32.const 1))))))
    (global.set $bump (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "atlas_transform") (param $p i32) (param $len i32) (result i64)
    {transform}))"#
    ))
    .expect("valid WAT")
}

/// Returns its input unchanged.
const ECHO: &str = "(i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))";

fn host() -> Arc<Host> {
    Host::new().expect("host")
}

fn strict() -> Limits {
    Limits {
        fuel: 5_000_000,
        timeout: Duration::from_millis(200),
        memory_bytes: 1 << 20,
        output_bytes: 64 << 10,
    }
}

/// After any failure, the host still runs a good plugin.
fn still_alive(host: &Host) {
    let echo = host.compile(&module(ECHO, "")).expect("echo compiles");
    let out = echo
        .call(host, b"{\"readings\":[]}", &strict())
        .expect("echo runs");
    assert_eq!(out.bytes, b"{\"readings\":[]}");
    assert!(out.fuel_used > 0);
}

fn run(host: &Host, transform: &str, limits: &Limits) -> Result<Vec<u8>, PluginError> {
    let plugin: Plugin = host.compile(&module(transform, ""))?;
    plugin.call(host, b"input", limits).map(|o| o.bytes)
}

#[test]
fn a_good_plugin_echoes_and_reports_fuel() {
    still_alive(&host());
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let host = host();
    // The deadline is the ceiling's, far beyond what 5M fuel takes on any
    // machine, so only fuel can stop this loop.
    let limits = Limits {
        timeout: Limits::CEILING.timeout,
        ..strict()
    };
    let err = run(&host, "(loop $l (br $l)) unreachable", &limits).unwrap_err();
    assert_eq!(err, PluginError::OutOfFuel { budget: 5_000_000 });
    assert!(err.to_string().contains("fuel limit"));
    still_alive(&host);
}

#[test]
fn an_infinite_loop_with_ample_fuel_hits_the_deadline() {
    let host = host();
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(50),
        ..strict()
    };
    let err = run(&host, "(loop $l (br $l)) unreachable", &limits).unwrap_err();
    assert_eq!(err, PluginError::Timeout { ms: 50 });
    still_alive(&host);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let host = host();
    let bomb =
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
    let err = run(&host, bomb, &strict()).unwrap_err();
    assert_eq!(err, PluginError::MemoryLimit { bytes: 1 << 20 });
    still_alive(&host);
}

#[test]
fn a_huge_output_is_refused() {
    let host = host();
    let err = run(&host, "(i64.const 0x7fffffff)", &strict()).unwrap_err();
    assert_eq!(
        err,
        PluginError::OutputTooLarge {
            len: 0x7fff_ffff,
            max: 64 << 10
        }
    );
    still_alive(&host);
}

#[test]
fn an_output_outside_memory_is_refused() {
    let host = host();
    let err = run(&host, "(i64.const 0xffff000000000010)", &strict()).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::OutputOutOfBounds {
                ptr: 0xffff_0000,
                len: 16,
                ..
            }
        ),
        "{err}"
    );
    still_alive(&host);
}

#[test]
fn a_trap_is_contained() {
    let host = host();
    let err = run(&host, "unreachable", &strict()).unwrap_err();
    assert!(
        matches!(&err, PluginError::Trap(m) if m.contains("unreachable")),
        "{err}"
    );
    still_alive(&host);
}

#[test]
fn deep_recursion_overflows_the_plugin_stack_only() {
    let host = host();
    let wasm = module(
        "(drop (call $down (i32.const 0))) (i64.const 0)",
        "(func $down (param $n i32) (result i32) (call $down (i32.add (local.get $n) (i32.const 1))))",
    );
    let limits = Limits {
        fuel: u64::MAX / 2,
        ..strict()
    };
    let err = host
        .compile(&wasm)
        .unwrap()
        .call(&host, b"x", &limits)
        .unwrap_err();
    assert_eq!(err, PluginError::StackOverflow);
    still_alive(&host);
}

#[test]
fn forbidden_imports_are_named_at_compile_time() {
    let host = host();
    let wasm = module(
        ECHO,
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
    );
    let err = host.compile(&wasm).err().unwrap();
    assert_eq!(
        err,
        PluginError::ForbiddenImport {
            module: "wasi_snapshot_preview1".into(),
            name: "fd_write".into()
        }
    );
    assert!(err.to_string().contains("wasi_snapshot_preview1.fd_write"));
    // The one import there is, with the right type, is accepted.
    let ok = module(ECHO, r#"(import "atlas" "log" (func (param i32 i32)))"#);
    assert!(host.compile(&ok).is_ok());
}

#[test]
fn a_start_function_that_loops_is_stopped_at_compile_time() {
    let host = host();
    let wasm = module(ECHO, "(func $spin (loop $l (br $l))) (start $spin)");
    // Fuel and the deadline both bound the probe; which one trips first
    // depends on the machine's speed (a slow debug run meets the deadline),
    // and either is the right answer: the module never gets registered.
    let err = host.compile(&wasm).err().unwrap();
    assert!(
        matches!(
            err,
            PluginError::OutOfFuel { .. } | PluginError::Timeout { .. }
        ),
        "{err}"
    );
    still_alive(&host);
}

#[test]
fn the_abi_is_checked() {
    let host = host();
    let version = |v: i32| {
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
                 (func (export "atlas_abi_version") (result i32) i32.const {v})
                 (func (export "atlas_alloc") (param i32) (result i32) i32.const 0)
                 (func (export "atlas_transform") (param i32 i32) (result i64) i64.const 0))"#
        ))
        .unwrap()
    };
    for (v, abi) in [(1, Abi::Json), (2, Abi::Binary)] {
        assert_eq!(host.compile(&version(v)).unwrap().abi(), abi);
    }
    for found in [0, 3, -1] {
        let err = host.compile(&version(found)).err().unwrap();
        assert_eq!(err, PluginError::AbiVersion { found });
        assert!(
            err.to_string().contains("this host speaks 1 and 2"),
            "{err}"
        );
    }
    let missing = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    assert!(matches!(
        host.compile(&missing).err().unwrap(),
        PluginError::MissingExport {
            name: "atlas_abi_version",
            ..
        }
    ));
    let wrong = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "atlas_abi_version") (result i32) i32.const 1)
             (func (export "atlas_alloc") (param i32) (result i32) i32.const 0)
             (func (export "atlas_transform") (param i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    assert!(matches!(
        host.compile(&wrong).err().unwrap(),
        PluginError::MissingExport {
            name: "atlas_transform",
            ..
        }
    ));
    assert!(matches!(
        host.compile(b"not wasm").err().unwrap(),
        PluginError::Invalid(_)
    ));
}

#[test]
fn precompiled_artifacts_load_and_bad_ones_fall_back_to_compiling() {
    let host = host();
    let wasm = module(ECHO, "");
    let artifact = host.compile(&wasm).unwrap().precompiled().unwrap();
    let loaded = host.load(Some(&artifact), &wasm).unwrap();
    assert_eq!(loaded.call(&host, b"abc", &strict()).unwrap().bytes, b"abc");
    let mut corrupt = artifact.clone();
    corrupt.truncate(artifact.len() / 2);
    let fallback = host.load(Some(&corrupt), &wasm).unwrap();
    assert_eq!(
        fallback.call(&host, b"abc", &strict()).unwrap().bytes,
        b"abc"
    );
    assert!(host.load(None, &wasm).is_ok());
}

#[test]
fn the_host_survives_many_failures_in_a_row() {
    let host = host();
    for _ in 0..50 {
        assert!(run(&host, "unreachable", &strict()).is_err());
        assert!(run(&host, "(loop $l (br $l)) unreachable", &strict()).is_err());
    }
    still_alive(&host);
}

#[test]
fn uploads_need_a_well_formed_answer_to_the_sample_batch() {
    let host = host();
    // Echoing the input is a valid (identity) transform.
    assert!(atlas_plugin_host::check_upload(&host, &module(ECHO, ""), &strict()).is_ok());
    // Returning four bytes of garbage is malformed output.
    let garbage = module(
        "(i32.store (i32.const 0) (i32.const 0x21212121)) (i64.const 4)",
        "",
    );
    assert!(matches!(
        atlas_plugin_host::check_upload(&host, &garbage, &strict()),
        Err(PluginError::MalformedOutput(_))
    ));
    let huge = vec![0u8; atlas_plugin_host::MAX_MODULE_BYTES + 1];
    assert!(matches!(
        atlas_plugin_host::check_upload(&host, &huge, &strict()),
        Err(PluginError::TooLarge { .. })
    ));
}
