-- +goose Up
-- The balance cap limits charges only: a refund returns money owed, so no
-- CHECK bounds the balance from above and a refund always lands.
COMMENT ON COLUMN users.balance IS
    'What the user can spend, in the smallest currency unit; never negative (CHECK). '
    'Charges may not raise it above 1,000,000,000,000 (shop.MaxBalance, checked by the charge); '
    'the cap limits charges only: a refund always lands, even when it takes the balance above the cap, '
    'so no CHECK bounds it from above.';

-- +goose Down
COMMENT ON COLUMN users.balance IS NULL;
