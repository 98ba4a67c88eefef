package bus

import "errors"

// Health reports nil while the embedded server runs with JetStream enabled.
func (s *Server) Health() error {
	switch {
	case !s.ns.Running():
		return errors.New("embedded nats server is not running")
	case !s.ns.JetStreamEnabled():
		return errors.New("embedded nats server runs without JetStream")
	}
	return nil
}
