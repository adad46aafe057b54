// Package envoy_test checks examples/envoy/envoy.yaml offline, the way
// Envoy would read it, against the quickstart config it is meant for.
package envoy_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/internal/envoytest"
)

// decode reads the bootstrap as strictly as Envoy would.
func decode(t *testing.T, data []byte) *bootstrapv3.Bootstrap { return envoytest.Bootstrap(t, data) }

// The types the example's typed_configs name, registered with protobuf.
var (
	_ = &grpcalsv3.HttpGrpcAccessLogConfig{}
	_ = &routerv3.Router{}
	_ = &httpv3.HttpProtocolOptions{}
)

func unpack(t *testing.T, a *anypb.Any, m proto.Message) {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("%s: %v", a.GetTypeUrl(), err)
	}
}

func addr(a *corev3.Address) string {
	s := a.GetSocketAddress()
	return fmt.Sprintf("%s:%d", s.GetAddress(), s.GetPortValue())
}

func endpoint(c *clusterv3.Cluster) string {
	return addr(c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress())
}

// quickstart is what the example relies on in examples/quickstart.yaml:
// Tollgate's gRPC address and its APIs.
type quickstart struct {
	Listen struct {
		GRPC string `json:"grpc"`
	} `json:"listen"`
	APIs []struct {
		ID       string `json:"id"`
		BasePath string `json:"basePath"`
	} `json:"apis"`
}

func readQuickstart(t *testing.T) quickstart {
	t.Helper()
	data, err := os.ReadFile("../quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var q quickstart
	if err := yaml.Unmarshal(data, &q); err != nil {
		t.Fatalf("quickstart.yaml: %v", err)
	}
	return q
}

func TestExample(t *testing.T) {
	data, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	q := readQuickstart(t)
	boot := decode(t, data)
	res := boot.GetStaticResources()

	if len(res.GetListeners()) != 1 || addr(res.GetListeners()[0].GetAddress()) != "127.0.0.1:8080" {
		t.Fatalf("want one listener on 127.0.0.1:8080: %v", res.GetListeners())
	}
	hcm := &hcmv3.HttpConnectionManager{}
	unpack(t, res.GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), hcm)

	// Paths and hosts, read as Tollgate reads them.
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
		t.Error("normalize_path and merge_slashes must be true")
	}
	if a := hcm.GetPathWithEscapedSlashesAction(); a != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Errorf("path_with_escaped_slashes_action %s, want REJECT_REQUEST (Tollgate's paths.escapedSlashes: reject)", a)
	}
	if hcm.GetTypedHeaderValidationConfig() != nil {
		t.Error("typed_header_validation_config makes Envoy ignore the path settings")
	}
	if hcm.GetStripTrailingHostDot() || hcm.GetStripAnyHostPort() || hcm.GetStripMatchingHostPort() {
		t.Error("the host must reach Tollgate as the client sent it (no port or trailing-dot stripping)")
	}

	// ext_authz first, over gRPC to the tollgate cluster, failing closed,
	// with every request header.
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("the router must be the last HTTP filter: %v", filters)
	}
	authz := &extauthzv3.ExtAuthz{}
	unpack(t, filters[0].GetTypedConfig(), authz)
	g := authz.GetGrpcService()
	if g.GetEnvoyGrpc().GetClusterName() != "tollgate" || g.GetTimeout().AsDuration() <= 0 || g.GetTimeout().AsDuration() > time.Second {
		t.Errorf("ext_authz gRPC service %v: want the tollgate cluster with a timeout of at most 1s", g)
	}
	if authz.GetFailureModeAllow() || authz.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("ext_authz: failure_mode_allow %v, transport_api_version %s", authz.GetFailureModeAllow(), authz.GetTransportApiVersion())
	}
	if authz.GetAllowedHeaders() != nil || authz.GetDisallowedHeaders() != nil {
		t.Error("ext_authz narrows the request headers Tollgate receives")
	}

	// ext_proc right after ext_authz, on the same cluster, failing closed,
	// waiting longer than an interceptor's default timeout (1s), free to
	// ask each request for what its operation needs, with ext_authz's
	// metadata.
	if len(filters) < 3 || filters[1].GetName() != "envoy.filters.http.ext_proc" {
		t.Fatalf("ext_proc must come right after ext_authz: %v", filters)
	}
	proc := &extprocv3.ExternalProcessor{}
	unpack(t, filters[1].GetTypedConfig(), proc)
	if proc.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "tollgate" || proc.GetFailureModeAllow() {
		t.Errorf("ext_proc: gRPC service %v, failure_mode_allow %v", proc.GetGrpcService(), proc.GetFailureModeAllow())
	}
	if d := proc.GetMessageTimeout().AsDuration(); d <= time.Second {
		t.Errorf("ext_proc message_timeout %s: want more than the interceptors' default timeout of 1s", d)
	}
	if !proc.GetAllowModeOverride() {
		t.Error("ext_proc without allow_mode_override: every request would send every part")
	}
	pm := proc.GetProcessingMode()
	if pm.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND || pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE ||
		pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE {
		t.Errorf("ext_proc processing_mode %v: want the request headers and no bodies by default", pm)
	}
	if ns := proc.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(); len(ns) != 1 || ns[0] != "envoy.filters.http.ext_authz" {
		t.Errorf("ext_proc forwards metadata namespaces %v, want ext_authz's", ns)
	}

	// The access log, to Tollgate's access-log service under log_name tollgate.
	var logged bool
	for _, l := range hcm.GetAccessLog() {
		als := &grpcalsv3.HttpGrpcAccessLogConfig{}
		if l.GetTypedConfig().UnmarshalTo(als) != nil {
			continue
		}
		c := als.GetCommonConfig()
		logged = c.GetLogName() == "tollgate" && c.GetGrpcService().GetEnvoyGrpc().GetClusterName() == "tollgate" &&
			c.GetTransportApiVersion() == corev3.ApiVersion_V3
	}
	if !logged {
		t.Error("no gRPC access log to the tollgate cluster with log_name tollgate")
	}

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range res.GetClusters() {
		clusters[c.GetName()] = c
	}
	tg := clusters["tollgate"]
	if tg == nil || endpoint(tg) != q.Listen.GRPC {
		t.Fatalf("the tollgate cluster does not point at the quickstart's listen.grpc %s", q.Listen.GRPC)
	}
	opts := &httpv3.HttpProtocolOptions{}
	unpack(t, tg.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"], opts)
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("the tollgate cluster does not speak HTTP/2 (gRPC needs it)")
	}
	if b := clusters["backend"]; b == nil || endpoint(b) != "127.0.0.1:9000" {
		t.Error("no backend cluster on 127.0.0.1:9000")
	}
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	if last := routes[len(routes)-1]; last.GetRoute().GetCluster() != "backend" {
		t.Errorf("the last route goes to %q, not backend", last.GetRoute().GetCluster())
	}
}

// TestNamedRouteExample: the commented route, uncommented, is valid and
// names an API of the quickstart config under that API's base path.
func TestNamedRouteExample(t *testing.T) {
	data, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# - match:") {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatal("no commented route in envoy.yaml")
	}
	comment := regexp.MustCompile(`^(\s*)# ?`)
	for i := start; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "#"); i++ {
		lines[i] = comment.ReplaceAllString(lines[i], "$1")
	}
	boot := decode(t, []byte(strings.Join(lines, "\n")))
	q := readQuickstart(t)

	hcm := &hcmv3.HttpConnectionManager{}
	unpack(t, boot.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), hcm)
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	if len(routes) != 2 {
		t.Fatalf("uncommented, the example has %d routes, want 2", len(routes))
	}
	named := routes[0]
	per := &extauthzv3.ExtAuthzPerRoute{}
	unpack(t, named.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"], per)
	id := per.GetCheckSettings().GetContextExtensions()["api"]
	base := ""
	for _, a := range q.APIs {
		if a.ID == id {
			base = a.BasePath
		}
	}
	if base == "" {
		t.Fatalf("the route names API %q, which the quickstart config does not have", id)
	}
	if p := named.GetMatch().GetPathSeparatedPrefix(); p != base {
		t.Errorf("the route matches %q, not the API's base path %s", p, base)
	}
	if named.GetRoute().GetCluster() != "backend" {
		t.Errorf("the named route goes to %q", named.GetRoute().GetCluster())
	}
}
