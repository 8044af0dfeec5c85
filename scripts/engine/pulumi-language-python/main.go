// Command pulumi-language-python is larry's stand-in for Pulumi's Python language host.
//
// Why it exists: the upstream host lives in its own untagged Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3). The Go module
// proxy reachable from larry's machines refuses every pseudo-version of that module at a
// release commit (HTTP 403), so the real host cannot be built here. Everything the host
// needs *around* it is available in the tagged github.com/pulumi/pulumi/sdk/v3 module:
// the gRPC protocol (proto/go), the Python toolchain logic (python/toolchain: virtualenv
// resolution and activation, pip/uv/poetry) and the program runner script
// `pulumi-language-python-exec` (python/cmd). This file is the thin gRPC layer between
// them, written for larry; it implements the calls the engine makes for `preview`, `up`,
// `destroy`, policy packs and `about`, and answers Unimplemented for code generation.
//
// scripts/engine.sh builds it against the same sdk/v3 version as the `pulumi` CLI and puts
// `pulumi-language-python-exec` (from the same sdk/v3 module) executable beside it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// Exit code the exec script uses after it has already shown the user an actionable error:
// the engine should stop without printing a second, generic error.
const userActionableExitCode = 32

func main() {
	// Flags the engine may pass to every plugin (--logtostderr, -v=N, --logflow, --tracing);
	// only tracing is forwarded. The logging package linked in through the SDK may already
	// have registered some of them.
	tracing := flag.String("tracing", "", "Zipkin-compatible tracing endpoint")
	if flag.Lookup("logtostderr") == nil {
		flag.Bool("logtostderr", false, "log to stderr (accepted, ignored)")
	}
	if flag.Lookup("logflow") == nil {
		flag.Bool("logflow", false, "flow logging settings to child processes (accepted, ignored)")
	}
	if flag.Lookup("v") == nil {
		flag.Int("v", 0, "log verbosity (accepted, ignored)")
	}
	flag.Parse()

	engineAddress := ""
	if flag.NArg() > 0 {
		engineAddress = flag.Arg(0)
	}

	self, err := os.Executable()
	if err != nil {
		fatal(fmt.Errorf("locating own executable: %w", err))
	}
	execScript := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if fi, err := os.Stat(execScript); err != nil || fi.Mode()&0o111 == 0 {
		fatal(fmt.Errorf("missing executor: %s must exist beside the language host and be executable", execScript))
	}

	h := &host{engineAddress: engineAddress, tracing: *tracing, execScript: execScript}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fatal(fmt.Errorf("starting language host gRPC server: %w", err))
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(fmt.Errorf("language host gRPC server stopped: %w", err))
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	tracing       string
	execScript    string
}

func (h *host) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// programInfo holds the parts of pulumirpc.ProgramInfo this host uses.
type programInfo struct {
	root, dir, entry string
	options          map[string]any
}

func parseInfo(info *pulumirpc.ProgramInfo) (programInfo, error) {
	if info == nil {
		return programInfo{}, status.Error(codes.InvalidArgument, "missing program info")
	}
	pi := programInfo{
		root:  info.GetRootDirectory(),
		dir:   info.GetProgramDirectory(),
		entry: info.GetEntryPoint(),
	}
	if info.GetOptions() != nil {
		pi.options = info.GetOptions().AsMap()
	}
	if pi.dir == "" {
		pi.dir = pi.root
	}
	return pi, nil
}

func (pi programInfo) option(name string) string {
	if v, ok := pi.options[name].(string); ok {
		return v
	}
	return ""
}

// toolchain resolves the Python toolchain the project's runtime options ask for (pip with
// an optional virtualenv by default, as upstream).
func (pi programInfo) toolchain() (toolchain.Toolchain, error) {
	opts := toolchain.PythonOptions{
		Root:       pi.root,
		ProgramDir: pi.dir,
		Virtualenv: pi.option("virtualenv"),
		Toolchain:  toolchain.Pip,
	}
	switch pi.option("toolchain") {
	case "uv":
		opts.Toolchain = toolchain.Uv
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "", "pip":
	default:
		return nil, fmt.Errorf("unsupported python toolchain %q", pi.option("toolchain"))
	}
	return toolchain.ResolveToolchain(opts)
}

// program is the path handed to the exec script: a file, or a directory with __main__.py.
func (pi programInfo) program() string {
	if pi.entry == "" || pi.entry == "." {
		return pi.dir
	}
	return filepath.Join(pi.dir, pi.entry)
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	pi, err := parseInfo(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := pi.toolchain()
	if err != nil {
		return nil, err
	}

	args := []string{"-u", h.execScript}
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engine())
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	add("root_directory", pi.root)
	args = append(args, pi.program())
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("preparing python: %w", err)
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	// The SDK expects a JSON object and a JSON list here, never null.
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	secretKeyList := req.GetConfigSecretKeys()
	if secretKeyList == nil {
		secretKeyList = []string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serializing config: %w", err)
	}
	secretKeys, err := json.Marshal(secretKeyList)
	if err != nil {
		return nil, fmt.Errorf("serializing config secret keys: %w", err)
	}
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == userActionableExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// pluginManifest is one installed distribution's pulumi-plugin.json.
type pluginManifest struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// Lists the pulumi-plugin.json manifests of the distributions installed in the
// environment, as JSON, using only the standard library.
const listPluginsScript = `
import importlib.metadata as md, json, sys
out = []
for dist in md.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json":
            try:
                out.append(json.loads(f.read_text()))
            except Exception as e:
                print("skipping %s: %s" % (f, e), file=sys.stderr)
json.dump(out, sys.stdout)
`

func (h *host) requiredPlugins(ctx context.Context, info *pulumirpc.ProgramInfo) ([]pluginManifest, error) {
	pi, err := parseInfo(info)
	if err != nil {
		return nil, err
	}
	tc, err := pi.toolchain()
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing installed Pulumi packages: %w", err)
	}
	var manifests []pluginManifest
	if err := json.Unmarshal(out, &manifests); err != nil {
		return nil, fmt.Errorf("parsing installed Pulumi packages: %w", err)
	}
	var result []pluginManifest
	seen := map[string]bool{}
	for _, m := range manifests {
		if !m.Resource || m.Name == "" || seen[m.Name+"@"+m.Version] {
			continue
		}
		seen[m.Name+"@"+m.Version] = true
		result = append(result, m)
	}
	return result, nil
}

func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	plugins, err := h.requiredPlugins(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range plugins {
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Name, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

func (h *host) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	plugins, err := h.requiredPlugins(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range plugins {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Kind: "resource", Name: p.Name, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

// streamWriter forwards a child's output as InstallDependencies responses.
type streamWriter struct {
	mu     *sync.Mutex
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chunk := append([]byte(nil), p...)
	msg := &pulumirpc.InstallDependenciesResponse{Stdout: chunk}
	if w.stderr {
		msg = &pulumirpc.InstallDependenciesResponse{Stderr: chunk}
	}
	if err := w.send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	pi, err := parseInfo(req.GetInfo())
	if err != nil {
		return err
	}
	tc, err := pi.toolchain()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	stdout := streamWriter{mu: &mu, send: server.Send}
	stderr := streamWriter{mu: &mu, send: server.Send, stderr: true}
	ctx := server.Context()
	// An existing, valid virtualenv is used as it is: larry's projects point at a venv
	// that `make` has already populated from pyproject.toml.
	if err := tc.ValidateVenv(ctx); err == nil {
		return nil
	}
	if err := tc.EnsureVenv(ctx, pi.dir, req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	return tc.InstallDependencies(ctx, pi.dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

func (h *host) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	pi, err := parseInfo(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := pi.toolchain()
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"languageHost": "larry stand-in for pulumi-language-python"},
	}, nil
}

func (h *host) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	pi, err := parseInfo(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := pi.toolchain()
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

// runPluginWriter forwards a plugin's output as RunPlugin responses.
type runPluginWriter struct {
	mu     *sync.Mutex
	send   func(*pulumirpc.RunPluginResponse) error
	stderr bool
}

func (w runPluginWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chunk := append([]byte(nil), p...)
	msg := &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: chunk}}
	if w.stderr {
		msg = &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: chunk}}
	}
	if err := w.send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RunPlugin runs a plugin written in Python: a policy pack (kind "analyzer") through the
// `pulumi.policy` module of the Pulumi SDK, anything else (a component provider) as a
// program with the engine's arguments.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	pi, err := parseInfo(req.GetInfo())
	if err != nil {
		return err
	}
	tc, err := pi.toolchain()
	if err != nil {
		return err
	}
	ctx := server.Context()

	var cmd *exec.Cmd
	if req.GetKind() == "analyzer" {
		args := append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
		args = append(args, pi.program())
		cmd, err = tc.Command(ctx, args...)
	} else {
		args := append([]string{"-u", pi.program()}, req.GetArgs()...)
		cmd, err = tc.Command(ctx, args...)
	}
	if err != nil {
		return err
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, req.GetEnv()...)
	cmd.Dir = req.GetPwd()
	if cmd.Dir == "" {
		cmd.Dir = pi.dir
	}

	var mu sync.Mutex
	cmd.Stdout = runPluginWriter{mu: &mu, send: server.Send}
	cmd.Stderr = runPluginWriter{mu: &mu, send: server.Send, stderr: true}

	code := int32(0)
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return fmt.Errorf("running python plugin: %w", err)
		}
		code = int32(exitErr.ExitCode())
	}
	mu.Lock()
	defer mu.Unlock()
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}

var (
	_ pulumirpc.LanguageRuntimeServer = (*host)(nil)
	_ io.Writer                       = streamWriter{}
	_ io.Writer                       = runPluginWriter{}
)
