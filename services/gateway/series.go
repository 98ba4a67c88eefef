package gateway

import (
	"sort"
	"time"
)

// series is a bounded list of values kept sorted by time. Values may arrive
// out of order (the history read at start races the live watch), so add
// inserts in place and drops a value it has already seen; when full, the
// oldest value goes. A series is not safe for concurrent use: the view locks.
type series[T any] struct {
	max   int
	items []point[T]
}

type point[T any] struct {
	at  time.Time
	key uint64 // stream sequence: two values at the same time are told apart by it
	v   T
}

func newSeries[T any](max int) *series[T] {
	return &series[T]{max: max}
}

// add inserts v at time at, and reports whether it was new: false for a
// value already present (same time and key), or one older than every value
// of a full series.
func (s *series[T]) add(at time.Time, key uint64, v T) bool {
	i := sort.Search(len(s.items), func(i int) bool {
		p := s.items[i]
		return p.at.After(at) || (p.at.Equal(at) && p.key >= key)
	})
	if i < len(s.items) && s.items[i].at.Equal(at) && s.items[i].key == key {
		return false
	}
	if len(s.items) >= s.max {
		if i == 0 {
			return false
		}
		// Drop the oldest in place: the slice keeps its capacity.
		copy(s.items, s.items[1:i])
		s.items[i-1] = point[T]{at: at, key: key, v: v}
		return true
	}
	s.items = append(s.items, point[T]{})
	copy(s.items[i+1:], s.items[i:])
	s.items[i] = point[T]{at: at, key: key, v: v}
	return true
}

// since returns the values at or after t (all when t is zero), oldest first.
func (s *series[T]) since(t time.Time) []T {
	i := 0
	if !t.IsZero() {
		i = sort.Search(len(s.items), func(i int) bool { return !s.items[i].at.Before(t) })
	}
	out := make([]T, 0, len(s.items)-i)
	for _, p := range s.items[i:] {
		out = append(out, p.v)
	}
	return out
}

// last returns the newest value.
func (s *series[T]) last() (T, time.Time, bool) {
	if len(s.items) == 0 {
		var zero T
		return zero, time.Time{}, false
	}
	p := s.items[len(s.items)-1]
	return p.v, p.at, true
}

func (s *series[T]) len() int { return len(s.items) }
