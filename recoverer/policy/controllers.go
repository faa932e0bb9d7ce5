package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Controller is a decision rule a run is given by name (`sentinel run
// --controller`, `sentinel bench recover --controllers`): Sentinel's
// guarded policy, or a baseline it is measured against. The name is stored
// with the run's ground truth, so it is part of the contract: add new
// ones, never rename old ones.
type Controller struct {
	// Name is what flags, tables and stored runs call it.
	Name string
	// Decide is its decision rule.
	Decide Func
	// Baseline marks a comparison controller. A baseline runs its rule
	// alone: the cohort breaker is part of Sentinel, not of the baseline.
	Baseline bool
}

// SentinelController is the name of Sentinel's own controller, Decide with
// the cohort breaker: what runs unless a run asks for another.
const SentinelController = "sentinel"

// controllers are the registered controllers, in the order tables print
// them: Sentinel's first, then the baselines from the most to the least
// automation.
var controllers = []Controller{
	{Name: SentinelController, Decide: Decide},
	{Name: "retry-then-rollback", Decide: RetryThenRollback, Baseline: true},
	{Name: "retry-only", Decide: RetryOnly, Baseline: true},
	{Name: "none", Decide: Observe, Baseline: true},
}

// ErrUnknownController is returned for a name no controller has, so a
// caller can tell a typo in a flag from a failed run.
var ErrUnknownController = errors.New("unknown controller")

// Controllers returns every registered controller, in the order tables
// print them. The slice is the caller's.
func Controllers() []Controller { return slices.Clone(controllers) }

// ControllerNames returns the registered controllers' names, in the order
// tables print them, for flag help and error messages.
func ControllerNames() []string {
	names := make([]string, len(controllers))
	for i, c := range controllers {
		names[i] = c.Name
	}
	return names
}

// LookupController returns the controller called name, or an error
// wrapping ErrUnknownController that lists the known names.
func LookupController(name string) (Controller, error) {
	for _, c := range controllers {
		if c.Name == name {
			return c, nil
		}
	}
	return Controller{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownController, name, strings.Join(ControllerNames(), ", "))
}

// ParseControllers reads a comma-separated list of controller names, as a
// flag gives it: blanks around a name and empty entries are ignored, so an
// empty list is no controller at all; an unknown name is an error wrapping
// ErrUnknownController.
func ParseControllers(list string) ([]Controller, error) {
	var cs []Controller
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		c, err := LookupController(n)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}
