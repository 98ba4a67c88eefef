package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// ErrNoBackend is returned by a pick when the table has no backend that may
// take a request (none, or all SUNDOWN, or only the excluded one).
var ErrNoBackend = errors.New("no backend available")

// ErrUnknownPolicy is wrapped by ParsePolicy for a name it does not know.
var ErrUnknownPolicy = errors.New("unknown balance policy")

// Policy selects how a Picker chooses a backend.
type Policy uint8

// The policies, as named by RB_BALANCE_POLICY.
const (
	// PolicyP2C draws two candidates by weight and takes the one with the
	// lower (in flight + 1) × peak-EWMA latency. The default.
	PolicyP2C Policy = iota
	// PolicyWeighted is the prototype's categorical pick by weight.
	PolicyWeighted
	// PolicyRoundRobin cycles through the backends, ignoring weights.
	PolicyRoundRobin
	// PolicyLeastConn takes the backend with the fewest requests in flight.
	PolicyLeastConn
	numPolicies
)

var policyNames = [numPolicies]string{
	PolicyP2C:        "p2c",
	PolicyWeighted:   "weighted",
	PolicyRoundRobin: "round-robin",
	PolicyLeastConn:  "least-conn",
}

// String returns the policy's configuration name.
func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy maps a RB_BALANCE_POLICY value to a Policy. The empty string
// selects the default, p2c. Case and surrounding space are ignored.
func ParsePolicy(s string) (Policy, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "" {
		return PolicyP2C, nil
	}
	for p, n := range policyNames {
		if n == name {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("RB_BALANCE_POLICY %q: %w; allowed values are %s",
		s, ErrUnknownPolicy, strings.Join(policyNames[:], ", "))
}

// Picker chooses a backend for one request. Implementations are safe for
// concurrent use, take no lock and do not allocate; the randomness comes from
// r, which must not be shared between goroutines unless it is itself safe for
// that (SystemRand is).
type Picker interface {
	// Pick returns a backend for a new request at time now (unix nanos).
	Pick(r Rand, now int64) (*Backend, error)
	// PickExcept is Pick without the backend exclude (which may come from an
	// older table of the same backends), for the one retry after a connect
	// error. It returns ErrNoBackend when exclude is the only candidate.
	PickExcept(r Rand, now int64, exclude *Backend) (*Backend, error)
}

// Rand is the randomness a Picker draws from.
type Rand interface {
	Uint64() uint64
}

// SystemRand is the production Rand: math/rand/v2's top-level generator,
// which is safe for concurrent use without a lock.
type SystemRand struct{}

// Uint64 returns a uniformly distributed 64-bit value.
func (SystemRand) Uint64() uint64 { return rand.Uint64() }

var (
	_ Rand = SystemRand{}
	_ Rand = (*rand.PCG)(nil)
)

// mix is splitmix64: a cheap stream of extra random values derived from one
// draw of a Rand, for loops that need many (tie breaks, reservoir sampling).
type mix uint64

func (m *mix) next() uint64 {
	*m += 0x9e3779b97f4a7c15
	z := uint64(*m)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a random 64-bit value to [0, 1).
func unit(u uint64) float64 {
	return float64(u>>11) * 0x1p-53
}
