package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/outbox"
)

// Order statuses.
const (
	OrderOrdered   = "ORDERED"
	OrderPaid      = "PAID"
	OrderCancelled = "CANCELLED"
	// OrderExpired is an ORDERED order left unpaid past the expiry (see
	// ExpireOrders); it cannot be paid.
	OrderExpired = "EXPIRED"
)

// OrderLine is a quantity of one product detail. UnitPrice is filled in by
// the shop from the current price when the order is placed.
type OrderLine struct {
	ProductDetailID int64 `json:"productDetailId"`
	Quantity        int   `json:"quantity"`
	UnitPrice       int64 `json:"unitPrice"`
}

// Order is what a user has ordered and where it stands.
type Order struct {
	OrderID    int64       `json:"orderId"`
	UserID     int64       `json:"userId"`
	Status     string      `json:"status"`
	TotalPrice int64       `json:"totalPrice"`
	Items      []OrderLine `json:"items"`
	CreatedAt  time.Time   `json:"createdAt"`
}

// OrderView is an order with the events it caused and their delivery status,
// so a client can watch it become COMPLETE.
type OrderView struct {
	Order
	Events []outbox.Entry `json:"events"`
}

// PlaceOrder records an order of lines for a user at current prices. Stock is
// checked but not taken: it is decreased when the paid order is handled.
func (s *Service) PlaceOrder(ctx context.Context, userID int64, lines []OrderLine) (Order, error) {
	if err := validateLines(lines); err != nil {
		return Order{}, err
	}
	o := Order{UserID: userID, Status: OrderOrdered, Items: make([]OrderLine, len(lines))}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, userID); err != nil {
			return err
		}
		ids := make([]int64, len(lines))
		for i, l := range lines {
			ids[i] = l.ProductDetailID
		}
		type detail struct {
			price int64
			stock int
		}
		details := make(map[int64]detail, len(ids))
		rows, err := tx.QueryContext(ctx,
			`SELECT id, price, stock FROM product_details WHERE id = ANY($1)`, pq.Array(ids))
		if err != nil {
			return fmt.Errorf("look up product details: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var d detail
			if err := rows.Scan(&id, &d.price, &d.stock); err != nil {
				return fmt.Errorf("read product details: %w", err)
			}
			details[id] = d
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read product details: %w", err)
		}
		for i, l := range lines {
			d, ok := details[l.ProductDetailID]
			if !ok {
				return fmt.Errorf("product detail %d: %w", l.ProductDetailID, ErrNotFound)
			}
			if d.stock < l.Quantity {
				return fmt.Errorf("product detail %d has %d in stock, %d ordered: %w",
					l.ProductDetailID, d.stock, l.Quantity, ErrOutOfStock)
			}
			if d.price > (math.MaxInt64-o.TotalPrice)/int64(l.Quantity) {
				return invalid("order total is too large")
			}
			o.TotalPrice += d.price * int64(l.Quantity)
			o.Items[i] = OrderLine{ProductDetailID: l.ProductDetailID, Quantity: l.Quantity, UnitPrice: d.price}
		}
		err = tx.QueryRowContext(ctx,
			`INSERT INTO orders (user_id, status, total_price) VALUES ($1, $2, $3) RETURNING id, created_at`,
			userID, OrderOrdered, o.TotalPrice).Scan(&o.OrderID, &o.CreatedAt)
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		for _, l := range o.Items {
			_, err := tx.ExecContext(ctx,
				`INSERT INTO order_items (order_id, product_detail_id, quantity, unit_price) VALUES ($1, $2, $3, $4)`,
				o.OrderID, l.ProductDetailID, l.Quantity, l.UnitPrice)
			if err != nil {
				return fmt.Errorf("insert item %d of order %d: %w", l.ProductDetailID, o.OrderID, err)
			}
		}
		return nil
	})
	if err != nil {
		return Order{}, err
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, nil
}

func validateLines(lines []OrderLine) error {
	if len(lines) == 0 || len(lines) > MaxOrderLines {
		return invalid("an order needs between 1 and %d items", MaxOrderLines)
	}
	seen := make(map[int64]bool, len(lines))
	for i, l := range lines {
		if l.ProductDetailID < 1 {
			return invalid("items[%d].productDetailId must be a positive integer", i)
		}
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return invalid("items[%d].quantity must be between 1 and %d", i, MaxQuantity)
		}
		if seen[l.ProductDetailID] {
			return invalid("items[%d]: product detail %d is listed twice", i, l.ProductDetailID)
		}
		seen[l.ProductDetailID] = true
	}
	return nil
}

// Order returns user userID's order orderID with its items and events; an
// order of another user is ErrNotFound, as one that does not exist.
func (s *Service) Order(ctx context.Context, userID, orderID int64) (OrderView, error) {
	v := OrderView{Order: Order{OrderID: orderID, UserID: userID}}
	err := s.db.QueryRowContext(ctx,
		`SELECT status, total_price, created_at FROM orders WHERE id = $1 AND user_id = $2`, orderID, userID).
		Scan(&v.Status, &v.TotalPrice, &v.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return OrderView{}, orderNotFound(orderID)
	}
	if err != nil {
		return OrderView{}, cancelled(ctx, fmt.Errorf("read order %d: %w", orderID, err))
	}
	v.CreatedAt = v.CreatedAt.UTC()
	if v.Items, err = orderLines(ctx, s.db, orderID); err != nil {
		return OrderView{}, cancelled(ctx, err)
	}
	if v.Events, err = outbox.ForOrder(ctx, s.db, orderID); err != nil {
		return OrderView{}, cancelled(ctx, err)
	}
	return v, nil
}

// orderLines lists the lines of an order by product detail id, the order in
// which stock is taken.
func orderLines(ctx context.Context, q outbox.Querier, orderID int64) ([]OrderLine, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT product_detail_id, quantity, unit_price FROM order_items
		 WHERE order_id = $1 ORDER BY product_detail_id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list items of order %d: %w", orderID, err)
	}
	defer rows.Close()
	lines := []OrderLine{}
	for rows.Next() {
		var l OrderLine
		if err := rows.Scan(&l.ProductDetailID, &l.Quantity, &l.UnitPrice); err != nil {
			return nil, fmt.Errorf("read items of order %d: %w", orderID, err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read items of order %d: %w", orderID, err)
	}
	return lines, nil
}
