package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/resources"
)

// testPlane runs a control plane in process on free ports.
type testPlane struct {
	dir      string
	xds, api string
	stop     func()
}

func startPlane(t *testing.T, resourcesYAML string, chunk int) *testPlane {
	t.Helper()
	p := &testPlane{dir: t.TempDir()}
	p.write(t, resourcesYAML)
	addrs := make(chan [2]string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: &config.ControlPlaneConfig{
				Listen: config.ControlPlaneListen{XDS: "127.0.0.1:0", API: "127.0.0.1:0"},
				Source: config.Source{File: filepath.Join(p.dir, "resources.yaml")},
			},
			ChunkBytes:   chunk,
			PollInterval: 20 * time.Millisecond,
			Listening:    func(role, addr string) { addrs <- [2]string{role, addr} },
		})
	}()
	for range 2 {
		select {
		case a := <-addrs:
			if a[0] == "xds" {
				p.xds = a[1]
			} else {
				p.api = a[1]
			}
		case err := <-done:
			t.Fatalf("control plane stopped: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("control plane did not listen")
		}
	}
	p.stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(p.stop)
	return p
}

func (p *testPlane) write(t *testing.T, content string) {
	t.Helper()
	path := filepath.Join(p.dir, "resources.yaml")
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// deltaStream opens a Delta ADS stream and subscribes to one type.
func deltaStream(t *testing.T, addr, node, typeURL string, known map[string]string) discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, InitialResourceVersions: known}
	req.Node = nodeOf(node)
	if err := s.Send(req); err != nil {
		t.Fatal(err)
	}
	return s
}

func keysYAML(n int) string {
	var b strings.Builder
	b.WriteString("applications:\n  - {id: shop}\napiKeys:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {application: shop, name: key-%d, sha256: %064x}\n", i, i+1)
	}
	return b.String()
}

// TestLargeResponsesComeInPieces checks that a response above the chunk
// size is cut into pieces that each stay under it, all but the last
// marked partial, together carrying every resource once.
func TestLargeResponsesComeInPieces(t *testing.T) {
	const n, chunk = warmAfter + 200, 16 << 10 // enough to be encoded at load (warm)
	p := startPlane(t, keysYAML(n), chunk)
	s := deltaStream(t, p.xds, "r1", resources.ApiKey, nil)
	seen := map[string]string{}
	pieces := 0
	for {
		resp, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		pieces++
		size := 0
		for _, r := range resp.GetResources() {
			if _, dup := seen[r.GetName()]; dup {
				t.Errorf("%s sent twice", r.GetName())
			}
			seen[r.GetName()] = r.GetVersion()
			size += len(r.GetResource().GetValue())
		}
		if size > chunk {
			t.Errorf("piece %d carries %d bytes, over %d", pieces, size, chunk)
		}
		if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resources.ApiKey, ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(resp.GetSystemVersionInfo(), resources.PartialSuffix) {
			break
		}
	}
	if len(seen) != n || pieces < 2 {
		t.Fatalf("%d resources in %d pieces, want %d in several", len(seen), pieces, n)
	}

	// A replica that comes back holding every version is sent nothing
	// but the (empty) answer that ends its initial sync.
	again := deltaStream(t, p.xds, "r1", resources.ApiKey, seen)
	resp, err := again.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 0 || len(resp.GetRemovedResources()) != 0 {
		t.Fatalf("reconnect with every version: %d resources, %d removals, want none", len(resp.GetResources()), len(resp.GetRemovedResources()))
	}
}

// TestOnlyChangedResourcesAreSent checks that an edit of the source sends
// the resources it changed and removed, and nothing for other kinds.
func TestOnlyChangedResourcesAreSent(t *testing.T) {
	p := startPlane(t, keysYAML(3), 0)
	keys := deltaStream(t, p.xds, "r1", resources.ApiKey, nil)
	apps := deltaStream(t, p.xds, "r1", resources.Application, nil)
	first, err := keys.Recv()
	if err != nil || len(first.GetResources()) != 3 {
		t.Fatalf("first response: %v, %v", first, err)
	}
	appsFirst, err := apps.Recv()
	if err != nil || len(appsFirst.GetResources()) != 1 {
		t.Fatalf("first application response: %v, %v", appsFirst, err)
	}
	for _, s := range []struct {
		stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
		typ    string
		nonce  string
	}{{keys, resources.ApiKey, first.GetNonce()}, {apps, resources.Application, appsFirst.GetNonce()}} {
		if err := s.stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: s.typ, ResponseNonce: s.nonce}); err != nil {
			t.Fatal(err)
		}
	}
	// Key 1 changes its name, key 3 goes, key 4 comes.
	p.write(t, "applications:\n  - {id: shop}\napiKeys:\n"+
		fmt.Sprintf("  - {application: shop, name: renamed, sha256: %064x}\n", 1)+
		fmt.Sprintf("  - {application: shop, name: key-1, sha256: %064x}\n", 2)+
		fmt.Sprintf("  - {application: shop, name: key-3, sha256: %064x}\n", 4))
	resp, err := keys.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	if want := fmt.Sprintf("%064x %064x", 1, 4); strings.Join(slices.Sorted(slices.Values(names)), " ") != want {
		t.Errorf("updated %v, want the renamed and the new key", names)
	}
	if want := fmt.Sprintf("%064x", 3); len(resp.GetRemovedResources()) != 1 || resp.GetRemovedResources()[0] != want {
		t.Errorf("removed %v, want [%s]", resp.GetRemovedResources(), want)
	}
	// The application did not change: its stream stays quiet.
	got := make(chan error, 1)
	go func() {
		_, err := apps.Recv()
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("an unchanged kind was sent a response (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestReplicasListsAcksAndNacks checks GET /api/v1/replicas.
func TestReplicasListsAcksAndNacks(t *testing.T) {
	p := startPlane(t, keysYAML(1), 0)
	s := deltaStream(t, p.xds, "replica-7", resources.ApiKey, nil)
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resources.ApiKey, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "sha256: not hex"}}); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Node     string
			Metadata map[string]any
			Acked    map[string]string
			LastNack *nack
		}
		Total int
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := http.Get("http://" + p.api + "/api/v1/replicas")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(r.Body).Decode(&list)
		r.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if list.Total == 1 && list.Items[0].LastNack != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NACK listed: %+v", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
	item := list.Items[0]
	if item.Node != "replica-7" || item.LastNack.Type != "ApiKey" || item.LastNack.Error != "sha256: not hex" ||
		item.LastNack.Version != resp.GetSystemVersionInfo() || item.Metadata["role"] != "test" {
		t.Fatalf("replica = %+v (nack %+v)", item, item.LastNack)
	}
	if _, acked := item.Acked["ApiKey"]; acked {
		t.Error("a refused response is listed as accepted")
	}
}

// TestStateOfTheWorldRefused: the linear cache cannot tell such clients
// about removals, so the control plane does not serve them.
func TestStateOfTheWorldRefused(t *testing.T) {
	p := startPlane(t, keysYAML(1), 0)
	conn, err := grpc.NewClient(p.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: resources.ApiKey})
	if _, err := s.Recv(); grpcstatus.Code(err) != codes.Unimplemented {
		t.Fatalf("state-of-the-world stream: %v, want Unimplemented", err)
	}
}

// TestInvalidSourceKeepsServing: a bad edit changes nothing that is
// served and is reported at /api/v1/status.
func TestInvalidSourceKeepsServing(t *testing.T) {
	p := startPlane(t, keysYAML(2), 0)
	p.write(t, "apiKeys:\n  - {application: nobody, sha256: zz}\n")
	var st sourceStatus
	deadline := time.Now().Add(5 * time.Second)
	for st.LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("the bad source was not reported")
		}
		time.Sleep(10 * time.Millisecond)
		r, err := http.Get("http://" + p.api + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(r.Body).Decode(&st)
		r.Body.Close()
	}
	if st.Resources["ApiKey"] != 2 || st.Resources["Application"] != 1 {
		t.Fatalf("after a bad edit the control plane serves %v, want the previous resources", st.Resources)
	}
}

func nodeOf(id string) *core.Node {
	md, _ := structpb.NewStruct(map[string]any{"role": "test"})
	return &core.Node{Id: id, Metadata: md}
}

// TestChangeBetweenPieces: when the source changes while a large
// response is going out in pieces, the replica still ends with every
// resource at its newest version.
func TestChangeBetweenPieces(t *testing.T) {
	const n, chunk = 500, 8 << 10
	p := startPlane(t, keysYAML(n), chunk)
	s := deltaStream(t, p.xds, "r1", resources.ApiKey, nil)
	held := map[string]string{}
	changed := false
	for {
		resp, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResources() {
			held[r.GetName()] = string(r.GetResource().GetValue())
		}
		for _, name := range resp.GetRemovedResources() {
			delete(held, name)
		}
		if !changed {
			// Key 1 is renamed and key n removed before the rest is sent.
			changed = true
			edited := strings.Replace(keysYAML(n), "name: key-0,", "name: renamed,", 1)
			edited = strings.Replace(edited, fmt.Sprintf("  - {application: shop, name: key-%d, sha256: %064x}\n", n-1, n), "", 1)
			p.write(t, edited)
			waitChanges(t, p, 2)
		}
		if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resources.ApiKey, ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		if len(held) == n-1 && strings.Contains(held[fmt.Sprintf("%064x", 1)], "renamed") {
			if _, gone := held[fmt.Sprintf("%064x", n)]; !gone {
				return
			}
		}
		// Otherwise more pieces, or the change itself, are still to come
		// (the stream's deadline ends a test that never gets them).
	}
}

// waitChanges waits until the control plane has applied want loads that
// changed something.
func waitChanges(t *testing.T, p *testPlane, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := http.Get("http://" + p.api + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		var st sourceStatus
		_ = json.NewDecoder(r.Body).Decode(&st)
		r.Body.Close()
		if st.Changes >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control plane applied %d changes, want %d", st.Changes, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
