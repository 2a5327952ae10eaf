-- A reference to an attribute names its tenant too, so no row can tie one
-- tenant's change to another tenant's attribute, whatever the code does.
-- entity_values_ts has no foreign key at all (its inserts are the flush's
-- hot path); the flush joins the catalog on (tenant_id, attribute_id).
ALTER TABLE attributes ADD CONSTRAINT attributes_tenant_attribute_key UNIQUE (tenant_id, attribute_id);
ALTER TABLE hot_changes DROP CONSTRAINT hot_changes_attribute_id_fkey;
ALTER TABLE hot_changes ADD CONSTRAINT hot_changes_tenant_attribute_fkey
    FOREIGN KEY (tenant_id, attribute_id) REFERENCES attributes (tenant_id, attribute_id);
