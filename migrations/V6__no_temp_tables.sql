-- PostgreSQL grants TEMPORARY on every database to PUBLIC. A temporary
-- table or function shadows a real one through the search path for the
-- session that made it, and pooled sessions are shared; no Atlas role needs
-- one, so no role gets one.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$;
