-- A function body full of semicolons: the whole file still runs as one migration.
CREATE FUNCTION customer_total_cents(customer bigint) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
  total bigint;
BEGIN
  SELECT coalesce(sum(total_cents), 0) INTO total FROM orders WHERE customer_id = customer;
  RETURN total;
END;
$$;
