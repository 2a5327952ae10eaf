-- A precompiled artifact (.cwasm) is native code that wasmtime runs without
-- checking it: whoever can replace it in the bucket runs code in ingest.
-- The registry now stores each artifact under its own SHA-256 and records
-- that hash here, where only the registry writes; ingest runs an artifact
-- only when its bytes hash to the recorded value, and otherwise compiles
-- the module, whose hash it checks too. Versions uploaded before this have
-- no recorded artifact and are compiled from the module.
ALTER TABLE tenant_plugins
    ADD COLUMN artifact_sha256 text CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$');
