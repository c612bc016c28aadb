package shop

import (
	"context"
	"database/sql"
	"fmt"
)

// demoUsers are the names of SeedDemo's users, in the order it adds them.
func demoUsers() []string { return []string{"alice", "bob", "carol"} }

// DemoUsers are the ids SeedDemo's users get in a fresh database.
func DemoUsers() []int64 {
	ids := make([]int64, len(demoUsers()))
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	return ids
}

// SeedDemo fills an empty database with a few users (balance 0) and products
// with stock, for trying the system out. It does nothing, and reports false,
// when any user or product exists already.
func (s *Service) SeedDemo(ctx context.Context) (seeded bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var exists bool
		err := tx.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM products)`).Scan(&exists)
		if err != nil {
			return fmt.Errorf("check for data: %w", err)
		}
		if exists {
			return nil
		}
		for _, name := range demoUsers() {
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (name) VALUES ($1)`, name); err != nil {
				return fmt.Errorf("insert user %s: %w", name, err)
			}
		}
		type option struct {
			name         string
			price, stock int64
		}
		products := []struct {
			name    string
			options []option
		}{
			{"Kafka T-shirt", []option{{"S", 15000, 100}, {"M", 15000, 100}, {"L", 16000, 50}}},
			{"Postgres mug", []option{{"350ml", 9000, 40}}},
			{"CDC sticker pack", []option{{"10 pcs", 3000, 5}}},
		}
		for _, p := range products {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO products (name) VALUES ($1) RETURNING id`, p.name).Scan(&id); err != nil {
				return fmt.Errorf("insert product %s: %w", p.name, err)
			}
			for _, o := range p.options {
				if _, err := tx.ExecContext(ctx,
					`INSERT INTO product_details (product_id, option, price, stock) VALUES ($1, $2, $3, $4)`,
					id, o.name, o.price, o.stock); err != nil {
					return fmt.Errorf("insert option %s of %s: %w", o.name, p.name, err)
				}
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}
