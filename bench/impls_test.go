package bench

import (
	"errors"
	"testing"

	"github.com/sony/gobreaker/v2"
	"github.com/tripline/tripline/breaker"
)

// TestImpls checks that every contender is built as its benchmark says:
// each call takes the path it is meant to measure, and the breaker is left
// in the state the path needs. Benchmarks ignore their calls' errors, so
// this test is what keeps them honest.
func TestImpls(t *testing.T) {
	isNil := func(i int, err error) bool { return err == nil }
	paths := []struct {
		name  string
		impls []impl
		want  func(i int, err error) bool
	}{
		{"Success", successImpls(), isNil},
		{"SuccessUntouched", untouchedImpls(), isNil},
		{"TwoStep", twoStepImpls(), isNil},
		{"Failure", failureImpls(), func(i int, err error) bool {
			if i%failEvery == failEvery-1 {
				return err == nil
			}
			return errors.Is(err, errFail)
		}},
		{"Open", openImpls(), func(i int, err error) bool {
			return errors.Is(err, breaker.ErrOpen) || errors.Is(err, gobreaker.ErrOpenState)
		}},
	}
	for _, path := range paths {
		for _, im := range path.impls {
			t.Run(path.name+"/impl="+im.name, func(t *testing.T) {
				call, check := im.setup(t)
				for i := range 3 * failEvery {
					if err := call(i); !path.want(i, err) {
						t.Fatalf("call %d returned %v, not what the %s path expects", i, err, path.name)
					}
				}
				check(t)
			})
		}
	}
}
