DROP FUNCTION customer_total_cents(bigint);
