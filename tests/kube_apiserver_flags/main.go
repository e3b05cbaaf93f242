// Command kube-apiserver-etcd-flags parses kube-apiserver's etcd flags with kube-apiserver's own
// code (k8s.io/apiserver, pinned in go.mod) and prints where each resource is stored, so the
// tests can check the --etcd-servers and --etcd-servers-overrides values this program exports
// against the real parser and validator instead of a re-implementation.
//
//	kube-apiserver-etcd-flags --etcd-servers=URL,URL --etcd-servers-overrides=/events#URL;URL \
//	    [--etcd-cafile=...] [-- group/resource ...]
//
// stdout (exit 0), resources keyed "group/resource" (group empty for the core group):
//
//	{"servers": [...],                      // --etcd-servers: every resource without an override
//	 "overrides": {"/events": [...], ...},  // each override's resource, as the storage factory resolves it
//	 "resources": {"/pods": [...], ...}}    // each resource named after "--", resolved the same way
//
// A flag kube-apiserver rejects (unknown, unparsable, or failing EtcdOptions.Validate) exits 1
// with kube-apiserver's own messages on stderr, one a line; a failure of this program itself (a
// resource after "--" that is not group/resource) exits 2.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/server/options"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	cliflag "k8s.io/component-base/cli/flag"
)

// anyVersion stands in for kube-apiserver's resource encoding config (built in k8s.io/kubernetes
// from the scheme of every built-in API, which is not an importable module). The storage
// factory only asks it which version to encode in; that has no bearing on the etcd servers a
// resource is stored in, and answering for any group lets the tests name any resource.
type anyVersion struct{}

func (anyVersion) StorageEncodingFor(gr schema.GroupResource) (schema.GroupVersion, error) {
	return schema.GroupVersion{Group: gr.Group, Version: "v1"}, nil
}

func (anyVersion) InMemoryEncodingFor(gr schema.GroupResource) (schema.GroupVersion, error) {
	return schema.GroupVersion{Group: gr.Group, Version: runtime.APIVersionInternal}, nil
}

func key(gr schema.GroupResource) string { return gr.Group + "/" + gr.Resource }

// fail exits 1 with kube-apiserver's messages: it rejects the command line.
func fail(errs ...error) {
	for _, err := range errs {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(1)
}

// broken exits 2: this program failed, not the flags.
func broken(err error) {
	fmt.Fprintln(os.Stderr, "kube-apiserver-etcd-flags:", err)
	os.Exit(2)
}

func main() {
	// kube-apiserver's defaults (options.NewServerRunOptions in k8s.io/kubernetes:
	// NewEtcdOptions(storagebackend.NewDefaultConfig("/registry", nil))), its "etcd" flag set,
	// and the normalization every Kubernetes command applies (component-base/cli.Run), so
	// --etcd_servers is accepted as kube-apiserver accepts it.
	etcd := options.NewEtcdOptions(storagebackend.NewDefaultConfig("/registry", nil))
	var named cliflag.NamedFlagSets
	etcd.AddFlags(named.FlagSet("etcd"))
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	fs.AddFlagSet(named.FlagSet("etcd"))
	fs.Usage = func() {} // the error alone, as a message to match, not the whole usage text
	if err := fs.Parse(os.Args[1:]); err != nil {
		fail(err)
	}
	if errs := etcd.Validate(); len(errs) > 0 {
		fail(errs...)
	}

	// kube-apiserver then builds a DefaultStorageFactory from the options and calls
	// SetEtcdLocation for each override (completedStorageFactoryConfig.New in
	// k8s.io/kubernetes/pkg/kubeapiserver, which splits the overrides inline after Validate
	// accepted them with ParseEtcdServersOverrides). The same parser supplies the overrides
	// here; the factory's NewConfig then says where each resource is stored. Not reproduced:
	// the resources that New makes cohabit (events.k8s.io/events is stored with /events, for
	// one), which are listed in k8s.io/kubernetes: an override applies to the resource it names.
	overrides, err := options.ParseEtcdServersOverrides(etcd.EtcdServersOverrides)
	if err != nil {
		fail(err)
	}
	factory := serverstorage.NewDefaultStorageFactory(etcd.StorageConfig, etcd.DefaultStorageMediaType,
		serializer.NewCodecFactory(runtime.NewScheme()), anyVersion{}, serverstorage.NewResourceConfig(), nil)
	for _, override := range overrides {
		factory.SetEtcdLocation(override.GroupResource, override.Servers)
	}
	resolve := func(gr schema.GroupResource) []string {
		config, err := factory.NewConfig(gr, nil)
		if err != nil {
			broken(err)
		}
		return config.Transport.ServerList
	}

	out := struct {
		Servers   []string            `json:"servers"`
		Overrides map[string][]string `json:"overrides"`
		Resources map[string][]string `json:"resources"`
	}{etcd.StorageConfig.Transport.ServerList, map[string][]string{}, map[string][]string{}}
	for _, override := range overrides {
		out.Overrides[key(override.GroupResource)] = resolve(override.GroupResource)
	}
	for _, arg := range fs.Args() {
		group, resource, ok := strings.Cut(arg, "/")
		if !ok {
			broken(fmt.Errorf("%q: a resource to resolve is group/resource (/pods, apps/deployments)", arg))
		}
		gr := schema.GroupResource{Group: group, Resource: resource}
		out.Resources[key(gr)] = resolve(gr)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		broken(err)
	}
}
