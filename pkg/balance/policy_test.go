package balance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Policy
		wantErr bool
	}{
		{name: "empty is the default", in: "", want: PolicyP2C},
		{name: "p2c", in: "p2c", want: PolicyP2C},
		{name: "weighted", in: "weighted", want: PolicyWeighted},
		{name: "round-robin", in: "round-robin", want: PolicyRoundRobin},
		{name: "least-conn", in: "least-conn", want: PolicyLeastConn},
		{name: "case and space", in: " Least-Conn\n", want: PolicyLeastConn},
		{name: "unknown", in: "random", wantErr: true},
		{name: "underscore is not accepted", in: "round_robin", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePolicy(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownPolicy) {
					t.Fatalf("err = %v, want ErrUnknownPolicy", err)
				}
				for _, part := range []string{"RB_BALANCE_POLICY", tt.in, "p2c, weighted, round-robin, least-conn"} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not mention %q", err, part)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, err := ParsePolicy(got.String()); err != nil || back != got {
				t.Errorf("String() %q does not parse back", got)
			}
		})
	}
}

func TestPickerForUnknownPolicyIsP2C(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 50)
	if table.Picker(Policy(200)) != table.Picker(PolicyP2C) {
		t.Error("Picker(200) is not the p2c picker")
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{name: "defaults", mutate: func(*Options) {}},
		{name: "slow start off", mutate: func(o *Options) { o.SlowStart = 0 }},
		{name: "fixed initial latency", mutate: func(o *Options) { o.InitialLatency = time.Millisecond }},
		{name: "tau", mutate: func(o *Options) { o.Tau = 0 }, wantErr: "tau"},
		{name: "initial latency", mutate: func(o *Options) { o.InitialLatency = -1 }, wantErr: "initial latency"},
		{name: "slow start", mutate: func(o *Options) { o.SlowStart = -time.Second }, wantErr: "slow start -1s"},
		{name: "floor zero", mutate: func(o *Options) { o.SlowStartFloor = 0 }, wantErr: "floor"},
		{name: "floor above one", mutate: func(o *Options) { o.SlowStartFloor = 1.5 }, wantErr: "floor"},
		{name: "streak", mutate: func(o *Options) { o.ErrorStreak = 0 }, wantErr: "error streak"},
		{name: "eject base", mutate: func(o *Options) { o.EjectBase = 0 }, wantErr: "eject base"},
		{name: "eject max below base", mutate: func(o *Options) { o.EjectMax = time.Second }, wantErr: "eject max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultOptions()
			tt.mutate(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateJoinsAllProblems(t *testing.T) {
	t.Parallel()
	err := Options{}.Validate()
	for _, part := range []string{"tau", "floor", "error streak", "eject base"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("Validate() of the zero value = %v, want it to mention %q", err, part)
		}
	}
}
