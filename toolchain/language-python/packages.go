package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// Every Pulumi SDK package ships a pulumi-plugin.json naming its provider plugin; this prints,
// for each installed distribution that has one, its name, version and that file's content.
const listPluginPackages = `
import importlib.metadata, json
found = []
for dist in importlib.metadata.distributions():
    for file in dist.files or []:
        if file.name == "pulumi-plugin.json":
            found.append({"name": dist.metadata["Name"], "version": dist.version,
                          "plugin": json.loads(file.locate().read_text())})
            break
print(json.dumps(found))
`

type pluginPackage struct {
	Name    string                  `json:"name"`
	Version string                  `json:"version"`
	Plugin  plugin.PulumiPluginJSON `json:"plugin"`
}

func requiredPackages(ctx context.Context, tc toolchain.Toolchain) ([]*pulumirpc.PackageDependency, error) {
	cmd, err := tc.Command(ctx, "-c", listPluginPackages)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the Pulumi packages of the virtualenv: %w", err)
	}
	var found []pluginPackage
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("reading the list of Pulumi packages: %w", err)
	}
	var deps []*pulumirpc.PackageDependency
	for _, pkg := range found {
		if !pkg.Plugin.Resource {
			continue
		}
		dep, err := packageDependency(pkg)
		if err != nil {
			return nil, err
		}
		deps = append(deps, dep)
	}
	return deps, nil
}

func packageDependency(pkg pluginPackage) (*pulumirpc.PackageDependency, error) {
	name := pkg.Plugin.Name
	if name == "" {
		name = strings.TrimPrefix(pkg.Name, "pulumi-")
	}
	version := pkg.Plugin.Version
	if version == "" {
		v, err := pluginVersion(pkg.Version)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg.Name, err)
		}
		version = v
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	dep := &pulumirpc.PackageDependency{Name: name, Version: version, Kind: "resource", Server: pkg.Plugin.Server}
	if p := pkg.Plugin.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	return dep, nil
}

var releaseVersion = regexp.MustCompile(`^\d+(\.\d+){0,2}$`)

// pluginVersion turns a Python release version (PEP 440: "5.6", "5.6.2") into the plugin's
// semver. Pre-releases carry a build suffix that cannot be derived; their packages name the
// version in pulumi-plugin.json instead.
func pluginVersion(packageVersion string) (string, error) {
	if !releaseVersion.MatchString(packageVersion) {
		return "", fmt.Errorf("cannot derive a plugin version from %q: set it in pulumi-plugin.json", packageVersion)
	}
	parts := strings.Split(packageVersion, ".")
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	return strings.Join(parts, "."), nil
}
