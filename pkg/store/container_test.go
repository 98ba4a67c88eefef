package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

func TestContainerRecords(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redistest.Start(t), nil)
	ctx := context.Background()
	created := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	rec := func(app, name, state string, labels map[string]string) ContainerRecord {
		return ContainerRecord{
			App: app, Name: name, ID: "id-" + name, Image: "worker:latest", Address: "172.18.0.2",
			State: state, Port: 8080, Created: created, Labels: labels,
		}
	}

	if got, err := s.ListContainers(ctx, "web"); err != nil || len(got) != 0 {
		t.Fatalf("ListContainers of an empty app = %v, %v", got, err)
	}
	if _, err := s.GetContainer(ctx, "web", "worker-00000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetContainer of a missing record: err = %v, want ErrNotFound", err)
	}

	// Written out of order, listed by name.
	for _, r := range []ContainerRecord{
		rec("web", "worker-c", "LU", map[string]string{"application": "web"}),
		rec("web", "worker-a", "INIT", nil),
		rec("web", "worker-b", "SUNDOWN", map[string]string{"application": "web", "x": "y"}),
		rec("api", "worker-a", "HU", nil),
	} {
		if err := s.PutContainer(ctx, r); err != nil {
			t.Fatalf("PutContainer(%s/%s): %v", r.App, r.Name, err)
		}
	}
	list := func(app string) []string {
		t.Helper()
		recs, err := s.ListContainers(ctx, app)
		if err != nil {
			t.Fatalf("ListContainers(%s): %v", app, err)
		}
		var names []string
		for _, r := range recs {
			if r.App != app {
				t.Fatalf("ListContainers(%s) returned a record of app %s", app, r.App)
			}
			names = append(names, r.Name+"="+r.State)
		}
		return names
	}
	if got, want := list("web"), []string{"worker-a=INIT", "worker-b=SUNDOWN", "worker-c=LU"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListContainers(web) = %v, want %v", got, want)
	}
	if got, want := list("api"), []string{"worker-a=HU"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListContainers(api) = %v, want %v", got, want)
	}

	// A record round-trips every field.
	want := rec("web", "worker-b", "SUNDOWN", map[string]string{"application": "web", "x": "y"})
	got, err := s.GetContainer(ctx, "web", "worker-b")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(want.Created) {
		t.Fatalf("Created = %s, want %s", got.Created, want.Created)
	}
	got.Created = want.Created
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetContainer = %+v, want %+v", got, want)
	}

	// Put replaces the whole record.
	repl := rec("web", "worker-b", "LU", nil)
	repl.Port = 9090
	if err := s.PutContainer(ctx, repl); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetContainer(ctx, "web", "worker-b")
	if err != nil || got.State != "LU" || got.Port != 9090 || len(got.Labels) != 0 {
		t.Fatalf("after replacing: %+v, %v; want state LU, port 9090, no labels", got, err)
	}

	// Delete removes the record and its index entry; repeating it is fine.
	for range 2 {
		if err := s.DeleteContainer(ctx, "web", "worker-b"); err != nil {
			t.Fatalf("DeleteContainer: %v", err)
		}
	}
	if _, err := s.GetContainer(ctx, "web", "worker-b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetContainer after delete: err = %v, want ErrNotFound", err)
	}
	if got, want := list("web"), []string{"worker-a=INIT", "worker-c=LU"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListContainers(web) after delete = %v, want %v", got, want)
	}
	if n, err := s.rdb.SCard(ctx, s.keys.containerIndex("web")).Result(); err != nil || n != 2 {
		t.Fatalf("index of web has %d names (%v), want 2", n, err)
	}
}

func TestDesiredCount(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redistest.Start(t), nil)
	ctx := context.Background()

	if n, ok, err := s.Desired(ctx, "web"); err != nil || ok || n != 0 {
		t.Fatalf("Desired of an unset app = %d, %v, %v; want 0, false, nil", n, ok, err)
	}
	for _, n := range []int{5, 0, 15} {
		if err := s.SetDesired(ctx, "web", n); err != nil {
			t.Fatalf("SetDesired(%d): %v", n, err)
		}
		got, ok, err := s.Desired(ctx, "web")
		if err != nil || !ok || got != n {
			t.Fatalf("Desired after SetDesired(%d) = %d, %v, %v", n, got, ok, err)
		}
	}
	if _, ok, _ := s.Desired(ctx, "api"); ok {
		t.Fatal("Desired(api) is set though only web was")
	}

	// A value someone else wrote by hand is reported, not misread.
	if err := s.rdb.Set(ctx, s.keys.desired("api"), "five", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Desired(ctx, "api"); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Desired of a non-numeric value: err = %v, want a decode error", err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("a bad value made Health report Redis down: %v", err)
	}
}
