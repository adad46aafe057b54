// Package istio holds no code: its test checks the Kubernetes and Istio
// manifests of deploy/istio offline, the way a cluster would read them.
package istio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
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
	"github.com/tollgate/tollgate/internal/envoytest"
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
			snap := tollgateConfig(t, objs)
			if !strings.HasSuffix(snap.Listen.Admin, ":8083") || !strings.HasSuffix(snap.Listen.GRPC, ":8081") {
				t.Errorf("listen %+v does not match the container ports", snap.Listen)
			}
			// The policies send Tollgate requests no API matches (an escaped
			// slash, an unknown path): Tollgate must refuse them.
			if snap.UnmatchedAllow {
				t.Error("unmatched: allow admits what no API matches")
			}

			// Every CUSTOM policy names the provider the Istio values register
			// and sends Tollgate every request on the hosts of its APIs.
			for _, o := range objs {
				if p, ok := o.value.(*securityv1beta1.AuthorizationPolicy); ok && p.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM {
					if p.GetProvider().GetName() != "tollgate" {
						t.Errorf("%s uses provider %q", o.name, p.GetProvider().GetName())
					}
					for _, problem := range customPolicyProblems(p, apiHosts(snap)) {
						t.Errorf("AuthorizationPolicy %s/%s: %s", o.namespace, o.name, problem)
					}
				}
				if p, ok := o.value.(*securityv1beta1.PeerAuthentication); ok && p.GetMtls().GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
					t.Errorf("PeerAuthentication %s/%s is not STRICT", o.namespace, o.name)
				}
			}

			checkControlPlane(t, objs)
			switch overlay {
			case "edge":
				checkEdge(t, objs, snap)
			default:
				checkProvider(t, overlay, objs, snap)
			}
		})
	}
}

// readMeshConfig decodes an overlay's istio-values.yaml strictly: only
// meshConfig at the top, and a meshConfig istio.io/api knows field by field.
func readMeshConfig(t *testing.T, overlay string) *meshv1alpha1.MeshConfig {
	t.Helper()
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
	mesh := &meshv1alpha1.MeshConfig{}
	if err := protojson.Unmarshal(values.MeshConfig, mesh); err != nil {
		t.Fatalf("meshConfig: %v", err)
	}
	return mesh
}

// tollgateConfig compiles the overlay's Tollgate config as a replica of
// its control plane runs it: its bootstrap (tollgate-config) with the
// resources the control plane serves (tollgate-resources), after checking
// that the bootstrap is wired to that control plane.
func tollgateConfig(t *testing.T, objs []object) *config.Config {
	t.Helper()
	cm := find[*corev1.ConfigMap](objs, "ConfigMap", "tollgate-config")
	res := find[*corev1.ConfigMap](objs, "ConfigMap", "tollgate-resources")
	if cm == nil || cm.Data["config.yaml"] == "" || res == nil || res.Data["resources.yaml"] == "" {
		t.Fatal("no tollgate-config ConfigMap with config.yaml, or no tollgate-resources with resources.yaml")
	}
	boot := withTLSFiles(t, cm.Data["config.yaml"])
	wired, err := config.Compile([]byte(boot), noEnv)
	if err != nil {
		t.Fatalf("Tollgate bootstrap: %v", err)
	}
	cp := wired.ControlPlane
	if want := "tollgate-controlplane." + cm.Namespace + ".svc.cluster.local:18000"; cp.Address != want {
		t.Errorf("controlPlane.address %q, want the role's control plane %q", cp.Address, want)
	}
	if cp.TLS.CertFile == "" || cp.StateDir != "/var/lib/tollgate" {
		t.Errorf("controlPlane %+v: want mutual TLS and the state directory the Deployment mounts", cp)
	}
	// The same model the replica compiles from what the control plane sends.
	block := regexp.MustCompile(`(?ms)^controlPlane:\n(?:[ #].*?\n)*`)
	standalone := block.ReplaceAllString(cm.Data["config.yaml"], "") + "\n" + res.Data["resources.yaml"]
	snap, err := config.Compile([]byte(standalone), noEnv)
	if err != nil {
		t.Fatalf("Tollgate config: %v", err)
	}
	return snap
}

func noEnv(string) (string, bool) { return "", false }

// withTLSFiles points the TLS file paths of a Tollgate config at empty
// files, so that validation (which checks the files are there) can run.
func withTLSFiles(t *testing.T, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(cfg, "/etc/tollgate-xds/", dir+"/")
}

// checkControlPlane: the role's control plane runs like Tollgate does
// (non-root, read-only root, probes), serves the role's resources with
// mutual TLS, and its config passes validation.
func checkControlPlane(t *testing.T, objs []object) {
	t.Helper()
	dep := find[*appsv1.Deployment](objs, "Deployment", "tollgate-controlplane")
	svc := find[*corev1.Service](objs, "Service", "tollgate-controlplane")
	cm := find[*corev1.ConfigMap](objs, "ConfigMap", "tollgate-controlplane-config")
	if dep == nil || svc == nil || cm == nil {
		t.Fatal("no control-plane Deployment, Service or config")
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the control plane may run as root or write its root")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("control-plane probes: %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if !slices.Equal(c.Args, []string{"controlplane", "--config", "/etc/tollgate-controlplane/cp.yaml"}) {
		t.Errorf("control-plane args %v", c.Args)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	sources := map[string]string{}
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil:
			sources[v.Name] = v.ConfigMap.Name
		case v.Secret != nil:
			sources[v.Name] = v.Secret.SecretName
		}
	}
	if sources["resources"] != "tollgate-resources" || mounts["resources"] != "/etc/tollgate-resources" ||
		sources["tls"] != "tollgate-controlplane-tls" || mounts["tls"] != "/etc/tollgate-xds" {
		t.Errorf("control-plane volumes %v mounted at %v", sources, mounts)
	}
	ports := map[int32]string{}
	for _, p := range svc.Spec.Ports {
		ports[p.Port] = p.Name
	}
	if ports[18000] != "tls-xds" || ports[18080] != "http-api" {
		t.Errorf("control-plane Service ports %v", ports)
	}
	// Its config, with the mounts it expects.
	dir := t.TempDir()
	res := find[*corev1.ConfigMap](objs, "ConfigMap", "tollgate-resources")
	if err := os.WriteFile(filepath.Join(dir, "resources.yaml"), []byte(res.Data["resources.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cpYAML := strings.ReplaceAll(withTLSFiles(t, cm.Data["cp.yaml"]), "/etc/tollgate-resources", dir)
	path := filepath.Join(t.TempDir(), "cp.yaml") // not among the resources
	if err := os.WriteFile(path, []byte(cpYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadControlPlane(path)
	if err != nil {
		t.Fatalf("control-plane config: %v", err)
	}
	if cfg.TLS.CAFile == "" || cfg.TLS.CertFile == "" {
		t.Error("the control plane does not require replicas' client certificates")
	}
	if _, err := config.LoadResources(cfg.Source.File); err != nil {
		t.Fatalf("the resources the control plane serves: %v", err)
	}
	// The replicas mount their client certificate and a state directory.
	tg := find[*appsv1.Deployment](objs, "Deployment", "tollgate")
	names := map[string]bool{}
	for _, v := range tg.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "tollgate-replica-tls" || v.EmptyDir != nil {
			names[v.Name] = true
		}
	}
	if !names["xds-tls"] || !names["state"] {
		t.Errorf("replica volumes %v: want the client certificate and the state directory", tg.Spec.Template.Spec.Volumes)
	}
}

// checkProvider: the CUSTOM provider registration, the mesh's path
// normalization and the policies using the provider.
func checkProvider(t *testing.T, overlay string, objs []object, snap *config.Config) {
	mesh := readMeshConfig(t, overlay)
	for _, problem := range meshProblems(mesh, credentialHeaders(snap)) {
		t.Errorf("istio-values.yaml: %s", problem)
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
func checkEdge(t *testing.T, objs []object, snap *config.Config) {
	boot := edgeBootstrap(t, objs)

	// Every HTTP connection manager reads paths and hosts as Tollgate does,
	// and every ext_authz filter sends Tollgate the credential headers.
	creds := credentialHeaders(snap)
	for _, l := range boot.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(m) != nil {
					continue
				}
				for _, problem := range hcmProblems(m) {
					t.Errorf("listener %s: %s", l.GetName(), problem)
				}
				for _, hf := range m.GetHttpFilters() {
					a := &extauthzv3.ExtAuthz{}
					if hf.GetTypedConfig().UnmarshalTo(a) != nil {
						continue
					}
					for _, problem := range authzHeaderProblems(a, creds) {
						t.Errorf("listener %s, %s: %s", l.GetName(), hf.GetName(), problem)
					}
				}
			}
		}
	}

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
				continue
			}
			// Envoy sends this route's requests as requests of that API:
			// they must lie under its base path, matched case-sensitively.
			base := snap.Catalog.API(api).BasePath
			if p := r.GetMatch().GetPathSeparatedPrefix(); (p != base && !strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/")) ||
				(r.GetMatch().GetCaseSensitive() != nil && !r.GetMatch().GetCaseSensitive().GetValue()) {
				t.Errorf("route %v names API %q but does not match under its base path %s", r.GetMatch(), api, base)
			}
		}
	}

	gw := find[*networkingv1alpha3.Gateway](objs, "Gateway", "api-gateway")
	if gw == nil || gw.GetServers()[0].GetTls().GetMode() != networkingv1alpha3.ServerTLSSettings_MUTUAL {
		t.Errorf("the ingress Gateway does not require client certificates: %v", gw)
	}
}

// edgeBootstrap decodes and validates the edge overlay's Envoy bootstrap
// (envoytest.Bootstrap: as strictly as Envoy would).
func edgeBootstrap(t *testing.T, objs []object) *bootstrapv3.Bootstrap {
	t.Helper()
	cm := find[*corev1.ConfigMap](objs, "ConfigMap", "envoy-config")
	if cm == nil {
		t.Fatal("no envoy-config ConfigMap")
	}
	return envoytest.Bootstrap(t, []byte(cm.Data["envoy.yaml"]))
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
			Components         []string
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
		for _, c := range k.Components {
			walk(filepath.Join(dir, c))
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

// The proxy settings below decide whether Envoy and Istio read a request
// the way Tollgate does. Each check returns what is wrong, so that
// TestProxyChecksFail can show it catches the setting it is about.

// hcmProblems: an HTTP connection manager reads paths and hosts as Tollgate
// does. Paths: normalize_path (dot segments, percent-encoded unreserved
// characters), merge_slashes, and escaped slashes refused as Tollgate's
// default paths.escapedSlashes: reject refuses them. Hosts: left as the
// client sent them, since Tollgate matches the port (hostMatching.stripPort:
// false) and the trailing dot.
func hcmProblems(m *hcmv3.HttpConnectionManager) []string {
	var out []string
	if !m.GetNormalizePath().GetValue() {
		out = append(out, "normalize_path is not true")
	}
	if !m.GetMergeSlashes() {
		out = append(out, "merge_slashes is not true")
	}
	if a := m.GetPathWithEscapedSlashesAction(); a != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		out = append(out, fmt.Sprintf("path_with_escaped_slashes_action is %s, not REJECT_REQUEST", a))
	}
	if m.GetTypedHeaderValidationConfig() != nil {
		out = append(out, "typed_header_validation_config is set: Envoy then ignores the path settings")
	}
	if m.GetStripTrailingHostDot() {
		out = append(out, "strip_trailing_host_dot is true: Tollgate keeps the trailing dot")
	}
	if m.GetStripAnyHostPort() || m.GetStripMatchingHostPort() {
		out = append(out, "the host port is stripped: Tollgate matches hosts with their port")
	}
	return out
}

// authzHeaderProblems: an ext_authz filter sends Tollgate the credential
// headers. Over gRPC Envoy sends every request header unless
// allowed_headers narrows them; over HTTP it sends only those listed.
func authzHeaderProblems(a *extauthzv3.ExtAuthz, creds []string) []string {
	var out []string
	allowed := a.GetAllowedHeaders()
	if a.GetHttpService() != nil && allowed == nil {
		allowed = a.GetHttpService().GetAuthorizationRequest().GetAllowedHeaders()
	}
	switch {
	case a.GetGrpcService() != nil && allowed != nil:
		out = append(out, "allowed_headers narrows the headers sent over gRPC")
	case a.GetHttpService() != nil:
		for _, h := range creds {
			if !listMatches(allowed, h) {
				out = append(out, fmt.Sprintf("the HTTP check does not send %s (allowed_headers)", h))
			}
		}
	}
	for _, h := range creds {
		if listMatches(a.GetDisallowedHeaders(), h) {
			out = append(out, fmt.Sprintf("disallowed_headers keeps %s from Tollgate", h))
		}
	}
	return out
}

// listMatches reports whether a header name matches one of l's patterns.
func listMatches(l *matcherv3.ListStringMatcher, name string) bool {
	for _, p := range l.GetPatterns() {
		v, fold := name, p.GetIgnoreCase()
		norm := func(s string) string {
			if fold {
				return strings.ToLower(s)
			}
			return s
		}
		switch {
		case p.GetExact() != "":
			if norm(v) == norm(p.GetExact()) {
				return true
			}
		case p.GetPrefix() != "":
			if strings.HasPrefix(norm(v), norm(p.GetPrefix())) {
				return true
			}
		case p.GetSuffix() != "":
			if strings.HasSuffix(norm(v), norm(p.GetSuffix())) {
				return true
			}
		case p.GetContains() != "":
			if strings.Contains(norm(v), norm(p.GetContains())) {
				return true
			}
		case p.GetSafeRegex() != nil:
			expr := "^(?:" + p.GetSafeRegex().GetRegex() + ")$"
			if fold {
				expr = "(?i)" + expr
			}
			if re, err := regexp.Compile(expr); err == nil && re.MatchString(v) {
				return true
			}
		}
	}
	return false
}

// meshProblems: the mesh normalizes paths as Tollgate reads them —
// MERGE_SLASHES is normalize_path and merge_slashes, with escaped slashes
// kept for Tollgate to refuse — and an HTTP-shaped provider sends the
// credential headers (Istio's gRPC provider sends every header).
func meshProblems(mesh *meshv1alpha1.MeshConfig, creds []string) []string {
	var out []string
	if n := mesh.GetPathNormalization().GetNormalization(); n != meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES {
		out = append(out, fmt.Sprintf("pathNormalization.normalization is %s, not MERGE_SLASHES", n))
	}
	for _, p := range mesh.GetExtensionProviders() {
		h := p.GetEnvoyExtAuthzHttp()
		if h == nil {
			continue
		}
		for _, c := range creds {
			if !slices.ContainsFunc(h.GetIncludeRequestHeadersInCheck(), func(pattern string) bool { return istioNameMatches(pattern, c) }) {
				out = append(out, fmt.Sprintf("provider %s does not send %s (includeRequestHeadersInCheck)", p.GetName(), c))
			}
		}
	}
	return out
}

// istioNameMatches: Istio's exact, "prefix*" and "*suffix" forms, case-insensitive.
func istioNameMatches(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(name, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(name, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == name
}

// customPolicyProblems: a CUSTOM policy sends Tollgate every request on the
// hosts of Tollgate's APIs. A request its rules do not match is never
// checked, so a rule narrowed by path, method, port, source or condition
// lets the forms it misses (an escaped slash, another method) through. At
// least one rule must match every request on every API host, with and
// without a port; with no host condition if an API has no hosts or a
// wildcard.
func customPolicyProblems(p *securityv1beta1.AuthorizationPolicy, hosts []string) []string {
	for _, r := range p.GetRules() {
		if len(r.GetFrom()) > 0 || len(r.GetWhen()) > 0 {
			continue
		}
		if len(r.GetTo()) == 0 {
			return nil
		}
		for _, to := range r.GetTo() {
			op := to.GetOperation()
			if len(op.GetNotHosts())+len(op.GetPorts())+len(op.GetNotPorts())+len(op.GetMethods())+
				len(op.GetNotMethods())+len(op.GetPaths())+len(op.GetNotPaths()) > 0 {
				continue
			}
			if coversHosts(op.GetHosts(), hosts) {
				return nil
			}
		}
	}
	return []string{fmt.Sprintf("no rule matches every request on the API hosts %v", hosts)}
}

func coversHosts(listed, hosts []string) bool {
	if len(listed) == 0 || slices.Contains(listed, "*") {
		return true
	}
	has := func(h string) bool {
		return slices.ContainsFunc(listed, func(l string) bool { return strings.EqualFold(l, h) })
	}
	for _, h := range hosts {
		if strings.Contains(h, "*") || !has(h) || (!strings.Contains(h, ":") && !has(h+":*")) {
			return false
		}
	}
	return true
}

// apiHosts: every host an API of the config is served on ("*" when an API
// names none).
func apiHosts(snap *config.Config) []string {
	var out []string
	for _, a := range snap.Catalog.APIs() {
		for _, h := range a.Hosts {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	slices.Sort(out)
	return out
}

// credentialHeaders: every header an API of the config takes a credential in.
func credentialHeaders(snap *config.Config) []string {
	var out []string
	for _, a := range snap.Catalog.APIs() {
		for _, h := range a.CredentialHeaders {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestProxyChecksFail: starting from the shipped settings, each change
// that makes the proxy read a request differently from Tollgate is
// reported by the check above that is about it.
func TestProxyChecksFail(t *testing.T) {
	edge := build(t, "edge")
	edgeSnap := tollgateConfig(t, edge)
	boot := edgeBootstrap(t, edge)
	hcm := &hcmv3.HttpConnectionManager{}
	if err := boot.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if p := hcmProblems(hcm); len(p) > 0 {
		t.Fatalf("the shipped edge settings: %v", p)
	}
	hcmChanges := map[string]func(*hcmv3.HttpConnectionManager){
		"normalize_path unset":          func(m *hcmv3.HttpConnectionManager) { m.NormalizePath = nil },
		"normalize_path false":          func(m *hcmv3.HttpConnectionManager) { m.NormalizePath = wrapperspb.Bool(false) },
		"merge_slashes false":           func(m *hcmv3.HttpConnectionManager) { m.MergeSlashes = false },
		"strip_trailing_host_dot true":  func(m *hcmv3.HttpConnectionManager) { m.StripTrailingHostDot = true },
		"strip_matching_host_port true": func(m *hcmv3.HttpConnectionManager) { m.StripMatchingHostPort = true },
		"typed_header_validation_config": func(m *hcmv3.HttpConnectionManager) {
			m.TypedHeaderValidationConfig = &corev3.TypedExtensionConfig{Name: "uhv"}
		},
		"strip_any_host_port true": func(m *hcmv3.HttpConnectionManager) {
			m.StripPortMode = &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
		},
	}
	for v, name := range hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction_name {
		if a := hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction(v); a != hcmv3.HttpConnectionManager_REJECT_REQUEST {
			hcmChanges["path_with_escaped_slashes_action "+name] = func(m *hcmv3.HttpConnectionManager) { m.PathWithEscapedSlashesAction = a }
		}
	}
	for name, change := range hcmChanges {
		m := proto.Clone(hcm).(*hcmv3.HttpConnectionManager)
		change(m)
		if len(hcmProblems(m)) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}

	authz := &extauthzv3.ExtAuthz{}
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(authz); err != nil {
		t.Fatal(err)
	}
	creds := credentialHeaders(edgeSnap)
	if !slices.Equal(creds, []string{"apikey", "authorization"}) {
		t.Fatalf("the edge config's credential headers are %v", creds)
	}
	if p := authzHeaderProblems(authz, creds); len(p) > 0 {
		t.Fatalf("the shipped ext_authz settings: %v", p)
	}
	exact := func(names ...string) *matcherv3.ListStringMatcher {
		l := &matcherv3.ListStringMatcher{}
		for _, n := range names {
			l.Patterns = append(l.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}})
		}
		return l
	}
	httpService := func(a *extauthzv3.ExtAuthz) {
		a.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{}}
	}
	authzChanges := map[string]func(*extauthzv3.ExtAuthz){
		"gRPC with allowed_headers": func(a *extauthzv3.ExtAuthz) { a.AllowedHeaders = exact("authorization", "apikey") },
		"disallowed_headers apikey": func(a *extauthzv3.ExtAuthz) { a.DisallowedHeaders = exact("apikey") },
		"disallowed_headers by prefix": func(a *extauthzv3.ExtAuthz) {
			a.DisallowedHeaders = &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
				{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "AUTH"}, IgnoreCase: true}}}
		},
		"HTTP without allowed_headers": httpService,
		"HTTP without apikey": func(a *extauthzv3.ExtAuthz) {
			httpService(a)
			a.AllowedHeaders = exact("authorization")
		},
		"HTTP with apikey only in the request settings": func(a *extauthzv3.ExtAuthz) {
			httpService(a)
			a.GetHttpService().AuthorizationRequest = &extauthzv3.AuthorizationRequest{AllowedHeaders: exact("apikey")}
		},
	}
	for name, change := range authzChanges {
		a := proto.Clone(authz).(*extauthzv3.ExtAuthz)
		change(a)
		if len(authzHeaderProblems(a, creds)) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
	listed := proto.Clone(authz).(*extauthzv3.ExtAuthz)
	httpService(listed)
	listed.AllowedHeaders = exact("authorization", "apikey")
	if p := authzHeaderProblems(listed, creds); len(p) > 0 {
		t.Errorf("HTTP listing the credential headers: %v", p)
	}

	for _, overlay := range []string{"ingress", "internal"} {
		objs := build(t, overlay)
		snap := tollgateConfig(t, objs)
		mesh := readMeshConfig(t, overlay)
		if p := meshProblems(mesh, credentialHeaders(snap)); len(p) > 0 {
			t.Fatalf("%s: the shipped mesh settings: %v", overlay, p)
		}
		meshChanges := map[string]func(*meshv1alpha1.MeshConfig){
			"no pathNormalization": func(m *meshv1alpha1.MeshConfig) { m.PathNormalization = nil },
			"HTTP provider without headers": func(m *meshv1alpha1.MeshConfig) {
				m.ExtensionProviders = append(m.ExtensionProviders, &meshv1alpha1.MeshConfig_ExtensionProvider{
					Name: "tollgate-http",
					Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
						Service: "tollgate.tollgate.svc.cluster.local", Port: 8082}},
				})
			},
		}
		for v, name := range meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType_name {
			if n := meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType(v); n != meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES {
				meshChanges["normalization "+name] = func(m *meshv1alpha1.MeshConfig) {
					m.PathNormalization = &meshv1alpha1.MeshConfig_ProxyPathNormalization{Normalization: n}
				}
			}
		}
		if len(credentialHeaders(snap)) == 0 {
			delete(meshChanges, "HTTP provider without headers")
		}
		for name, change := range meshChanges {
			m := proto.Clone(mesh).(*meshv1alpha1.MeshConfig)
			change(m)
			if len(meshProblems(m, credentialHeaders(snap))) == 0 {
				t.Errorf("%s: %s: not reported", overlay, name)
			}
		}

		hosts := apiHosts(snap)
		for _, o := range objs {
			p, ok := o.value.(*securityv1beta1.AuthorizationPolicy)
			if !ok || p.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
				continue
			}
			if problems := customPolicyProblems(p, hosts); len(problems) > 0 {
				t.Fatalf("%s: the shipped policy %s: %v", overlay, o.name, problems)
			}
			narrow := func(set func(*securityv1beta1.Operation)) func(*securityv1beta1.AuthorizationPolicy) {
				return func(p *securityv1beta1.AuthorizationPolicy) {
					for _, r := range p.GetRules() {
						if len(r.To) == 0 {
							r.To = []*securityv1beta1.Rule_To{{}}
						}
						for _, to := range r.To {
							if to.Operation == nil {
								to.Operation = &securityv1beta1.Operation{}
							}
							set(to.Operation)
						}
					}
				}
			}
			policyChanges := map[string]func(*securityv1beta1.AuthorizationPolicy){
				"no rules":     func(p *securityv1beta1.AuthorizationPolicy) { p.Rules = nil },
				"paths":        narrow(func(op *securityv1beta1.Operation) { op.Paths = []string{"/catalog/*", "/orders/*"} }),
				"notPaths":     narrow(func(op *securityv1beta1.Operation) { op.NotPaths = []string{"/health"} }),
				"methods":      narrow(func(op *securityv1beta1.Operation) { op.Methods = []string{"GET", "POST"} }),
				"ports":        narrow(func(op *securityv1beta1.Operation) { op.Ports = []string{"8080"} }),
				"another host": narrow(func(op *securityv1beta1.Operation) { op.Hosts = []string{"other.example.com", "other.example.com:*"} }),
				"from": func(p *securityv1beta1.AuthorizationPolicy) {
					for _, r := range p.GetRules() {
						r.From = []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{NotNamespaces: []string{"shop"}}}}
					}
				},
				"when": func(p *securityv1beta1.AuthorizationPolicy) {
					for _, r := range p.GetRules() {
						r.When = []*securityv1beta1.Condition{{Key: "request.headers[x-check]", Values: []string{"yes"}}}
					}
				},
			}
			if !slices.Contains(hosts, "*") {
				policyChanges["hosts without a port"] = narrow(func(op *securityv1beta1.Operation) { op.Hosts = hosts })
			}
			for name, change := range policyChanges {
				c := proto.Clone(p).(*securityv1beta1.AuthorizationPolicy)
				change(c)
				if len(customPolicyProblems(c, hosts)) == 0 {
					t.Errorf("%s: policy %s with %s: not reported", overlay, o.name, name)
				}
			}
		}
	}
}
