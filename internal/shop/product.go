package shop

import (
	"context"
	"database/sql"
	"fmt"
)

// Product is something for sale, in one or more options.
type Product struct {
	ProductID int64           `json:"productId"`
	Name      string          `json:"name"`
	Details   []ProductDetail `json:"details"`
}

// ProductDetail is one purchasable option of a product, with its own price and stock.
type ProductDetail struct {
	ProductDetailID int64  `json:"productDetailId"`
	Option          string `json:"option"`
	Price           int64  `json:"price"`
	Stock           int    `json:"stock"`
}

// Products lists every product with its details, by id.
func (s *Service) Products(ctx context.Context) ([]Product, error) {
	return s.products(ctx, 0)
}

// Product returns one product with its details.
func (s *Service) Product(ctx context.Context, productID int64) (Product, error) {
	ps, err := s.products(ctx, productID)
	if err != nil {
		return Product{}, err
	}
	if len(ps) == 0 {
		return Product{}, fmt.Errorf("product %d: %w", productID, ErrNotFound)
	}
	return ps[0], nil
}

// products lists one product (id > 0) or all of them (id == 0).
func (s *Service) products(ctx context.Context, id int64) ([]Product, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT p.id, p.name, d.id, d.option, d.price, d.stock
		 FROM products p LEFT JOIN product_details d ON d.product_id = p.id
		 WHERE $1 = 0 OR p.id = $1
		 ORDER BY p.id, d.id`, id)
	if err != nil {
		return nil, cancelled(ctx, fmt.Errorf("list products: %w", err))
	}
	defer rows.Close()
	products := []Product{}
	for rows.Next() {
		var p Product
		var detailID sql.NullInt64
		var option sql.NullString
		var price, stock sql.NullInt64
		if err := rows.Scan(&p.ProductID, &p.Name, &detailID, &option, &price, &stock); err != nil {
			return nil, cancelled(ctx, fmt.Errorf("read products: %w", err))
		}
		if n := len(products); n == 0 || products[n-1].ProductID != p.ProductID {
			p.Details = []ProductDetail{}
			products = append(products, p)
		}
		if detailID.Valid {
			last := &products[len(products)-1]
			last.Details = append(last.Details, ProductDetail{
				ProductDetailID: detailID.Int64,
				Option:          option.String,
				Price:           price.Int64,
				Stock:           int(stock.Int64),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, cancelled(ctx, fmt.Errorf("read products: %w", err))
	}
	return products, nil
}
