package events

import (
	"errors"
	"fmt"
	"strings"
)

// Subject prefixes. Each is followed by escaped tokens.
const (
	PrefixStats     = "rb.stats."
	PrefixScore     = "rb.score."
	PrefixScale     = "rb.scale."
	PrefixLifecycle = "rb.lifecycle."
	PrefixQueue     = "rb.queue."
	PrefixProxy     = "rb.proxy."
	PrefixConfig    = "rb.config."
	PrefixDLQ       = "rb.dlq."
)

// ErrBadToken is returned for a subject token that is empty or cannot be carried.
var ErrBadToken = errors.New("bad subject token")

// ValidToken reports whether s can stand as one NATS subject token as it is:
// not empty, and none of '.', '*', '>', '%' or white space / control characters.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			return false
		}
	}
	return true
}

func needsEscape(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}

// EscapeToken makes s safe as one subject token by percent-encoding the bytes
// NATS cannot carry in a token ('.', '*', '>', white space, control bytes) and
// '%' itself, so UnescapeToken restores s exactly. An empty s is an error.
func EscapeToken(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrBadToken)
	}
	if ValidToken(s) {
		return s, nil
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// UnescapeToken reverses EscapeToken.
func UnescapeToken(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated escape in %q", ErrBadToken, s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: bad escape in %q", ErrBadToken, s)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func subject(prefix string, tokens ...string) (string, error) {
	var b strings.Builder
	b.WriteString(prefix)
	for i, t := range tokens {
		e, err := EscapeToken(t)
		if err != nil {
			return "", fmt.Errorf("subject %s token %d: %w", strings.TrimSuffix(prefix, "."), i+1, err)
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e)
	}
	return b.String(), nil
}

// StatsSubject is rb.stats.<app>.<container>.
func StatsSubject(app, container string) (string, error) { return subject(PrefixStats, app, container) }

// ScoreSubject is rb.score.<app>.<container>.
func ScoreSubject(app, container string) (string, error) { return subject(PrefixScore, app, container) }

// ScaleSubject is rb.scale.<app>.
func ScaleSubject(app string) (string, error) { return subject(PrefixScale, app) }

// LifecycleSubject is rb.lifecycle.<app>.<container>.
func LifecycleSubject(app, container string) (string, error) {
	return subject(PrefixLifecycle, app, container)
}

// QueueSubject is rb.queue.<app>.
func QueueSubject(app string) (string, error) { return subject(PrefixQueue, app) }

// ProxySubject is rb.proxy.<app>.<proxy-id>.
func ProxySubject(app, proxyID string) (string, error) { return subject(PrefixProxy, app, proxyID) }

// ConfigSubject is rb.config.<app>.
func ConfigSubject(app string) (string, error) { return subject(PrefixConfig, app) }

// DLQSubject is rb.dlq.<stream>.
func DLQSubject(stream string) (string, error) { return subject(PrefixDLQ, stream) }

// Tokens splits a subject built here into its prefix-less, unescaped tokens.
func Tokens(prefix, subj string) ([]string, error) {
	if !strings.HasPrefix(subj, prefix) {
		return nil, fmt.Errorf("%w: subject %q does not start with %q", ErrBadToken, subj, prefix)
	}
	parts := strings.Split(subj[len(prefix):], ".")
	for i, p := range parts {
		u, err := UnescapeToken(p)
		if err != nil {
			return nil, err
		}
		parts[i] = u
	}
	return parts, nil
}
