\set id random(1, 100000)
WITH o AS (SELECT * FROM products WHERE id = :id AND deleted_at IS NULL FOR UPDATE),
n AS (UPDATE products t SET price_cents = t.price_cents + 1, updated_at = now(), version = t.version + 1
      FROM o WHERE t.id = o.id RETURNING t.*),
ch AS (SELECT jsonb_build_array(jsonb_build_object('field', 'price_cents', 'old', o.price_cents, 'new', n.price_cents)) AS c FROM o, n),
e AS (INSERT INTO keel_audit (entity_id, entity, action, actor, tenant, request_id, at, changes)
      SELECT n.id::text, 'product', 'updated', 'bench', NULL, 'req-bench', now(), ch.c FROM n, ch),
x AS (INSERT INTO keel_outbox (event_id, topic, payload, created_ms)
      SELECT gen_random_uuid()::text, 'shop.product.updated',
             '{"id":"01a22f5c-aaa0-74ad-82d7-4bc99434b1b9","type":"shop.product.updated","source":"/shop/products","subject":"42","time":"2026-12-01T020856.432049Z","service":"shop","actor":"bench","tenant": null,"request_id":"01a22f5c-aaa0-74ad-82d7-4bc99434b1b0","data":{"row":' || row_to_json(n)::text || ',"changes":' || ch.c::text || '}}',
             (extract(epoch FROM now()) * 1000)::bigint FROM n, ch)
SELECT id FROM n;
