package breaker_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tripline/tripline/breaker"
)

func TestErrorsIsAs(t *testing.T) {
	openErr := &breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: time.Second}
	halfOpenErr := &breaker.OpenError{Name: "svc", State: breaker.StateHalfOpen, RetryAfter: 2 * time.Second}
	storeErr := &breaker.StoreError{Name: "svc", Op: "admit", Err: io.ErrUnexpectedEOF}

	for _, tc := range []struct {
		name       string
		err        error
		isOpen     bool
		isEOF      bool
		asOpen     *breaker.OpenError
		asStore    *breaker.StoreError
		isUnknownC bool
	}{
		{name: "OpenError", err: openErr, isOpen: true, asOpen: openErr},
		{name: "OpenError half-open", err: halfOpenErr, isOpen: true, asOpen: halfOpenErr},
		{name: "wrapped OpenError", err: fmt.Errorf("calling svc: %w", openErr), isOpen: true, asOpen: openErr},
		{name: "joined OpenError", err: errors.Join(io.EOF, openErr), isOpen: true, asOpen: openErr},
		{name: "ErrOpen itself", err: breaker.ErrOpen, isOpen: true},
		{name: "StoreError", err: storeErr, isEOF: true, asStore: storeErr},
		{name: "wrapped StoreError", err: fmt.Errorf("x: %w", storeErr), isEOF: true, asStore: storeErr},
		{name: "StoreError of ErrUnknownCircuit", err: &breaker.StoreError{Op: "apply", Err: breaker.ErrUnknownCircuit}, isUnknownC: true},
		{name: "other error", err: io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.isOpen, errors.Is(tc.err, breaker.ErrOpen), "errors.Is ErrOpen")
			assert.Equal(t, tc.isEOF, errors.Is(tc.err, io.ErrUnexpectedEOF), "errors.Is the store's error")
			assert.Equal(t, tc.isUnknownC, errors.Is(tc.err, breaker.ErrUnknownCircuit), "errors.Is ErrUnknownCircuit")

			var oe *breaker.OpenError
			if assert.Equal(t, tc.asOpen != nil, errors.As(tc.err, &oe), "errors.As *OpenError") && tc.asOpen != nil {
				assert.Same(t, tc.asOpen, oe)
			}
			var se *breaker.StoreError
			if assert.Equal(t, tc.asStore != nil || tc.isUnknownC, errors.As(tc.err, &se), "errors.As *StoreError") && tc.asStore != nil {
				assert.Same(t, tc.asStore, se)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: 1500 * time.Millisecond},
			`tripline: circuit "svc" is open (retry after 1.5s)`},
		{&breaker.OpenError{Name: "svc", State: breaker.StateHalfOpen, RetryAfter: time.Second},
			`tripline: circuit "svc" is half-open (retry after 1s)`},
		{&breaker.OpenError{Name: "svc", State: breaker.StateOpen},
			`tripline: circuit "svc" is open`},
		// Issue 16: the message rounds RetryAfter to the millisecond.
		{&breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: 59*time.Second + 999994522},
			`tripline: circuit "svc" is open (retry after 1m0s)`},
		{&breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: 1234567890},
			`tripline: circuit "svc" is open (retry after 1.235s)`},
		{&breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: 1499 * time.Microsecond},
			`tripline: circuit "svc" is open (retry after 1ms)`},
		{&breaker.OpenError{Name: "svc", State: breaker.StateOpen, RetryAfter: time.Nanosecond},
			`tripline: circuit "svc" is open (retry after 1ms)`},
		{&breaker.StoreError{Name: "svc", Op: "record", Err: io.EOF},
			`tripline: circuit "svc": store record failed: EOF`},
		{breaker.ErrOpen, "tripline: circuit open"},
		{breaker.ErrUnknownCircuit, "tripline: unknown circuit"},
	} {
		assert.Equal(t, tc.want, tc.err.Error())
	}
	precise := &breaker.OpenError{Name: "svc", RetryAfter: 59*time.Second + 999994522}
	_ = precise.Error()
	assert.Equal(t, 59*time.Second+999994522, precise.RetryAfter, "RetryAfter keeps full precision")
}

func TestOpenErrorIsOnlyErrOpen(t *testing.T) {
	e := &breaker.OpenError{Name: "svc"}
	assert.True(t, e.Is(breaker.ErrOpen))
	assert.False(t, e.Is(breaker.ErrUnknownCircuit))
	assert.False(t, e.Is(errors.New(breaker.ErrOpen.Error())), "matched by identity, not by text")
	assert.False(t, errors.Is(e, &breaker.OpenError{Name: "svc"}), "two OpenErrors are not each other")
}
