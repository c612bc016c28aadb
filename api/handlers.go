package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/shop"
)

type handlers struct {
	shop   *shop.Service
	ready  func(context.Context) error
	logger *slog.Logger
}

func (h *handlers) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 503 "not ready" when the readiness check fails; the cause
// is logged (without addresses), never sent to the caller.
func (h *handlers) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := h.ready(ctx); err != nil {
		h.logger.WarnContext(c.Request().Context(), "readiness check failed", "err", problem.Redact(err, "database"))
		return &problem.Error{Status: http.StatusServiceUnavailable, Kind: "not-ready", Detail: "not ready"}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// ownUserID is the path's userId when it is the token's user; any other
// user is, to this caller, one that does not exist (404).
func ownUserID(c echo.Context) (int64, error) {
	id, err := pathID(c, "userId")
	if err != nil {
		return 0, err
	}
	if id != principal(c).UserID {
		return 0, shop.UserNotFound(id)
	}
	return id, nil
}

// bodyUserID checks a request body's optional userId against the token's
// user (403 if it names another) and returns the token's user.
func bodyUserID(c echo.Context, userID *int64) (int64, error) {
	me := principal(c).UserID
	if userID != nil && *userID != me {
		return 0, &problem.Error{Status: http.StatusForbidden, Kind: "forbidden",
			Detail: `field "userId" must be the bearer token's user (or be left out)`}
	}
	return me, nil
}

func (h *handlers) balance(c echo.Context) error {
	userID, err := ownUserID(c)
	if err != nil {
		return err
	}
	b, err := h.shop.Balance(c.Request().Context(), userID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, b)
}

type chargeRequest struct {
	Amount *int64 `json:"amount"`
}

func (h *handlers) charge(c echo.Context) error {
	userID, err := ownUserID(c)
	if err != nil {
		return err
	}
	var req chargeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	amount, err := positive(req.Amount, "amount")
	if err != nil {
		return err
	}
	b, err := h.shop.Charge(c.Request().Context(), userID, amount)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, b)
}

func (h *handlers) products(c echo.Context) error {
	ps, err := h.shop.Products(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ps)
}

func (h *handlers) product(c echo.Context) error {
	id, err := pathID(c, "productId")
	if err != nil {
		return err
	}
	p, err := h.shop.Product(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// orderRequest is POST /orders' body; userId, optional, must be the
// token's user.
type orderRequest struct {
	UserID *int64             `json:"userId"`
	Items  []orderItemRequest `json:"items"`
}

type orderItemRequest struct {
	ProductDetailID *int64 `json:"productDetailId"`
	Quantity        *int64 `json:"quantity"`
}

func (h *handlers) placeOrder(c echo.Context) error {
	var req orderRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	userID, err := bodyUserID(c, req.UserID)
	if err != nil {
		return err
	}
	if req.Items == nil {
		return problem.BadRequest("field %q is required", "items")
	}
	if len(req.Items) == 0 || len(req.Items) > shop.MaxOrderLines {
		return problem.BadRequest("field %q must hold 1 to %d items", "items", shop.MaxOrderLines)
	}
	lines := make([]shop.OrderLine, len(req.Items))
	for i, it := range req.Items {
		id, err := positive(it.ProductDetailID, "items[].productDetailId")
		if err != nil {
			return err
		}
		q, err := positive(it.Quantity, "items[].quantity")
		if err != nil {
			return err
		}
		if q > shop.MaxQuantity {
			return problem.BadRequest("field %q must be at most %d, not %d", "items[].quantity", shop.MaxQuantity, q)
		}
		lines[i] = shop.OrderLine{ProductDetailID: id, Quantity: int(q)}
	}
	o, err := h.shop.PlaceOrder(c.Request().Context(), userID, lines)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, c.Echo().Reverse("order", o.OrderID))
	return c.JSON(http.StatusCreated, o)
}

func (h *handlers) order(c echo.Context) error {
	id, err := pathID(c, "orderId")
	if err != nil {
		return err
	}
	o, err := h.shop.Order(c.Request().Context(), principal(c).UserID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, o)
}

// paymentRequest is POST /orders/{orderId}/payment's body; userId,
// optional, must be the token's user.
type paymentRequest struct {
	UserID *int64 `json:"userId"`
}

func (h *handlers) pay(c echo.Context) error {
	orderID, err := pathID(c, "orderId")
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c, shop.MaxIdempotencyKeyLen)
	if err != nil {
		return err
	}
	var req paymentRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	// The user the payment acts for, and so the owner of its idempotency
	// key: the token's. With it filled in, {} and {"userId": me} are the
	// same request to the fingerprint.
	userID, err := bodyUserID(c, req.UserID)
	if err != nil {
		return err
	}
	req.UserID = &userID
	fingerprint, err := requestFingerprint(c, req)
	if err != nil {
		return err
	}
	p, replayed, err := h.shop.Pay(c.Request().Context(), shop.PayRequest{
		OrderID: orderID, UserID: userID, IdempotencyKey: key, Fingerprint: fingerprint,
	})
	if err != nil {
		return err
	}
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusCreated, p)
}
