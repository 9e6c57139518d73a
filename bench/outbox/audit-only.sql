\set id random(1, 100000)
WITH o AS (SELECT * FROM products WHERE id = :id AND deleted_at IS NULL FOR UPDATE),
n AS (UPDATE products t SET price_cents = t.price_cents + 1, updated_at = now(), version = t.version + 1
      FROM o WHERE t.id = o.id RETURNING t.*),
ch AS (SELECT jsonb_build_array(jsonb_build_object('field', 'price_cents', 'old', o.price_cents, 'new', n.price_cents)) AS c FROM o, n),
e AS (INSERT INTO keel_audit (entity_id, entity, action, actor, tenant, request_id, at, changes)
      SELECT n.id::text, 'product', 'updated', 'bench', NULL, 'req-bench', now(), ch.c FROM n, ch)
SELECT id FROM n;
