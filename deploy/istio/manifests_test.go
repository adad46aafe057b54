// Package istio holds no code: its test checks the Kubernetes and Istio
// manifests of deploy/istio offline, the way a cluster would read them.
package istio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	telemetryv1alpha1 "istio.io/api/telemetry/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/internal/config"
)

var overlays = []string{"edge", "ingress", "internal"}

// object is one built manifest, decoded.
type object struct {
	kind, name, namespace string
	value                 any // the typed Kubernetes object, or the Istio spec
}

// strictJSON decodes data into v, refusing unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// kubeKinds are the Kubernetes kinds the manifests may use, by
// apiVersion/kind, with the official type each decodes into.
var kubeKinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// istioKinds are the Istio kinds, with the API spec message of each.
var istioKinds = map[string]func() proto.Message{
	"networking.istio.io/v1/Gateway":           func() proto.Message { return &networkingv1alpha3.Gateway{} },
	"networking.istio.io/v1/VirtualService":    func() proto.Message { return &networkingv1alpha3.VirtualService{} },
	"security.istio.io/v1/AuthorizationPolicy": func() proto.Message { return &securityv1beta1.AuthorizationPolicy{} },
	"security.istio.io/v1/PeerAuthentication":  func() proto.Message { return &securityv1beta1.PeerAuthentication{} },
	"telemetry.istio.io/v1/Telemetry":          func() proto.Message { return &telemetryv1alpha1.Telemetry{} },
}

// build runs kustomize on an overlay and decodes every resource strictly.
func build(t *testing.T, overlay string) []object {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "overlays/"+overlay)
	if err != nil {
		t.Fatalf("kustomize build overlays/%s: %v", overlay, err)
	}
	var out []object
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		data, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatal(err)
		}
		gvk := r.GetApiVersion() + "/" + r.GetKind()
		obj := object{kind: r.GetKind(), name: r.GetName(), namespace: r.GetNamespace()}
		if mk := kubeKinds[gvk]; mk != nil {
			obj.value = mk()
			if err := strictJSON(data, obj.value); err != nil {
				t.Errorf("%s %s %s: %v", overlay, gvk, obj.name, err)
			}
		} else if mk := istioKinds[gvk]; mk != nil {
			var envelope struct {
				APIVersion string            `json:"apiVersion"`
				Kind       string            `json:"kind"`
				Metadata   metav1.ObjectMeta `json:"metadata"`
				Spec       json.RawMessage   `json:"spec"`
			}
			if err := strictJSON(data, &envelope); err != nil {
				t.Errorf("%s %s %s: %v", overlay, gvk, obj.name, err)
			}
			spec := mk()
			if err := protojson.Unmarshal(envelope.Spec, spec); err != nil {
				t.Errorf("%s %s %s spec: %v", overlay, gvk, obj.name, err)
			}
			obj.value = spec
		} else {
			t.Errorf("%s: unexpected kind %s (%s)", overlay, gvk, obj.name)
		}
		out = append(out, obj)
	}
	return out
}

// find returns the object of kind named name, or name-<hash> for a
// generated ConfigMap whose name kustomize suffixes.
func find[T any](objs []object, kind, name string) T {
	for _, o := range objs {
		if o.kind == kind && (o.name == name || strings.HasPrefix(o.name, name+"-")) {
			if v, ok := o.value.(T); ok {
				return v
			}
		}
	}
	var zero T
	return zero
}

func TestOverlays(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			objs := build(t, overlay)

			// The Tollgate workload: probes on the admin port, a non-root
			// container, the config directory mounted (hot reload), budget and autoscaler.
			dep := find[*appsv1.Deployment](objs, "Deployment", "tollgate")
			if dep == nil {
				t.Fatal("no tollgate Deployment")
			}
			pod := dep.Spec.Template.Spec
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
				t.Error("the pod may run as root")
			}
			var tg *corev1.Container
			for i := range pod.Containers {
				c := &pod.Containers[i]
				if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
					c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
					t.Errorf("container %s: privilege escalation or a writable root", c.Name)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("container %s: no resources", c.Name)
				}
				if c.Name == "tollgate" {
					tg = c
				}
			}
			if tg == nil || tg.ReadinessProbe == nil || tg.ReadinessProbe.HTTPGet.Path != "/readyz" || tg.ReadinessProbe.HTTPGet.Port.StrVal != "admin" ||
				tg.LivenessProbe == nil || tg.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Fatalf("tollgate container probes: %+v", tg)
			}
			for _, m := range tg.VolumeMounts {
				if m.Name == "config" && (m.SubPath != "" || m.MountPath != "/etc/tollgate") {
					t.Errorf("config mounted as %+v: a subPath never sees ConfigMap updates", m)
				}
			}
			if dep.Spec.Template.Annotations["prometheus.io/scrape"] != "true" || dep.Spec.Template.Annotations["prometheus.io/port"] != "8083" {
				t.Error("no Prometheus scrape annotations")
			}
			if find[*policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget", "tollgate") == nil ||
				find[*autoscalingv2.HorizontalPodAutoscaler](objs, "HorizontalPodAutoscaler", "tollgate") == nil {
				t.Error("no disruption budget or autoscaler")
			}

			// Tollgate's config passes validation (what `enforcer validate` runs).
			cm := find[*corev1.ConfigMap](objs, "ConfigMap", "tollgate-config")
			if cm == nil || cm.Data["config.yaml"] == "" {
				t.Fatal("no tollgate-config ConfigMap with config.yaml")
			}
			snap, err := config.Compile([]byte(cm.Data["config.yaml"]), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("Tollgate config: %v", err)
			}
			if !strings.HasSuffix(snap.Listen.Admin, ":8083") || !strings.HasSuffix(snap.Listen.GRPC, ":8081") {
				t.Errorf("listen %+v does not match the container ports", snap.Listen)
			}

			// Every CUSTOM policy names the provider the Istio values register.
			for _, o := range objs {
				if p, ok := o.value.(*securityv1beta1.AuthorizationPolicy); ok && p.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM {
					if p.GetProvider().GetName() != "tollgate" {
						t.Errorf("%s uses provider %q", o.name, p.GetProvider().GetName())
					}
				}
				if p, ok := o.value.(*securityv1beta1.PeerAuthentication); ok && p.GetMtls().GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
					t.Errorf("PeerAuthentication %s/%s is not STRICT", o.namespace, o.name)
				}
			}

			switch overlay {
			case "edge":
				checkEdge(t, objs, snap)
			default:
				checkProvider(t, overlay, objs)
			}
		})
	}
}

// checkProvider: the CUSTOM provider registration and the policies using it.
func checkProvider(t *testing.T, overlay string, objs []object) {
	data, err := os.ReadFile("overlays/" + overlay + "/istio-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	j, err := yaml.YAMLToJSON(data)
	if err == nil {
		err = strictJSON(j, &values)
	}
	if err != nil {
		t.Fatalf("istio-values.yaml: %v", err)
	}
	var mesh meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(values.MeshConfig, &mesh); err != nil {
		t.Fatalf("meshConfig: %v", err)
	}
	var found bool
	for _, p := range mesh.GetExtensionProviders() {
		if g := p.GetEnvoyExtAuthzGrpc(); p.GetName() == "tollgate" && g != nil {
			found = true
			if g.GetService() != "tollgate.tollgate.svc.cluster.local" || g.GetPort() != 8081 || g.GetFailOpen() ||
				g.GetTimeout().AsDuration() != 250*time.Millisecond || g.GetStatusOnError() == "" {
				t.Errorf("provider settings %v", g)
			}
		}
	}
	if !found {
		t.Fatal("no envoyExtAuthzGrpc provider named tollgate")
	}
	policies := 0
	for _, o := range objs {
		if p, ok := o.value.(*securityv1beta1.AuthorizationPolicy); ok && p.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM {
			policies++
		}
	}
	if policies == 0 {
		t.Fatal("no CUSTOM AuthorizationPolicy")
	}
}

// checkEdge: the Envoy bootstrap decodes and validates, checks every API
// request with Tollgate as the contract says, and names only APIs the
// Tollgate config has; the ingress gateway takes mutual TLS.
func checkEdge(t *testing.T, objs []object, snap *config.Snapshot) {
	cm := find[*corev1.ConfigMap](objs, "ConfigMap", "envoy-config")
	if cm == nil {
		t.Fatal("no envoy-config ConfigMap")
	}
	j, err := yaml.YAMLToJSON([]byte(cm.Data["envoy.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &boot); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	if err := boot.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	validateAnys(t, boot.ProtoReflect())

	hcm := &hcmv3.HttpConnectionManager{}
	if err := boot.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	authz := &extauthzv3.ExtAuthz{}
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(authz); err != nil {
		t.Fatalf("the first HTTP filter is not ext_authz: %v", err)
	}
	g := authz.GetGrpcService()
	if g.GetEnvoyGrpc().GetClusterName() != "tollgate" || g.GetTimeout().AsDuration() != 250*time.Millisecond ||
		authz.GetFailureModeAllow() || !authz.GetIncludePeerCertificate() {
		t.Errorf("ext_authz settings %v", authz)
	}
	var tollgateCluster bool
	for _, c := range boot.GetStaticResources().GetClusters() {
		if c.GetName() == "tollgate" {
			addr := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			tollgateCluster = fmt.Sprintf("%s:%d", addr.GetAddress(), addr.GetPortValue()) == snap.Listen.GRPC
		}
		if c.GetName() == "istio_ingress" && c.GetTransportSocket() == nil {
			t.Error("the upstream to the ingress gateway has no TLS")
		}
	}
	if !tollgateCluster {
		t.Errorf("the tollgate cluster does not point at Tollgate's gRPC listener %s", snap.Listen.GRPC)
	}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			per := &extauthzv3.ExtAuthzPerRoute{}
			if err := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(per); err != nil {
				t.Errorf("route %v has no ext_authz settings", r.GetMatch())
				continue
			}
			api := per.GetCheckSettings().GetContextExtensions()["api"]
			if snap.Catalog.API(api) == nil {
				t.Errorf("route %v names API %q, which the Tollgate config does not have", r.GetMatch(), api)
			}
		}
	}

	gw := find[*networkingv1alpha3.Gateway](objs, "Gateway", "api-gateway")
	if gw == nil || gw.GetServers()[0].GetTls().GetMode() != networkingv1alpha3.ServerTLSSettings_MUTUAL {
		t.Errorf("the ingress Gateway does not require client certificates: %v", gw)
	}
}

// validateAnys unpacks every Any in m (typed_config and the like) and
// runs the validation of the message inside, recursively: ValidateAll on
// the bootstrap stops at Any fields.
func validateAnys(t *testing.T, m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				visit(t, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(t, mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsMap():
			visit(t, v.Message())
		}
		return true
	})
}

func visit(t *testing.T, m protoreflect.Message) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%s: %v (not registered?)", a.GetTypeUrl(), err)
			return
		}
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s: %v", a.GetTypeUrl(), err)
			}
		}
		validateAnys(t, inner.ProtoReflect())
		return
	}
	validateAnys(t, m)
}

// TestEveryManifestIsBuilt: no YAML file in deploy/istio is left out of
// the overlays (and so out of the checks above).
func TestEveryManifestIsBuilt(t *testing.T) {
	used := map[string]bool{}
	var walk func(dir string)
	walk = func(dir string) {
		data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			Resources          []string
			Patches            []struct{ Path string }
			ConfigMapGenerator []struct{ Files []string } `json:"configMapGenerator"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			t.Fatal(err)
		}
		used[filepath.Join(dir, "kustomization.yaml")] = true
		for _, r := range k.Resources {
			path := filepath.Join(dir, r)
			if st, err := os.Stat(path); err == nil && st.IsDir() {
				walk(path)
			} else {
				used[path] = true
			}
		}
		for _, p := range k.Patches {
			used[filepath.Join(dir, p.Path)] = true
		}
		for _, g := range k.ConfigMapGenerator {
			for _, f := range g.Files {
				if _, file, found := strings.Cut(f, "="); found {
					f = file
				}
				used[filepath.Join(dir, f)] = true
			}
		}
	}
	for _, o := range overlays {
		walk(filepath.Join("overlays", o))
	}
	var unused []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") && d.Name() != "istio-values.yaml" && !used[path] {
			unused = append(unused, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Fatalf("manifests no overlay builds: %v", unused)
	}
}
