// Command pulumi-language-nodejs is a small Node.js language host written for this
// project. It is NOT the upstream Pulumi language host: the Go module proxy this
// project can reach does not serve github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs
// at any version, so toolchain/bootstrap builds this one instead (see toolchain/README.md).
//
// It speaks the LanguageRuntime gRPC protocol of the pinned Pulumi SDK and behaves like the
// upstream host of Pulumi v3.259.0 (sdk/nodejs/cmd/pulumi-language-nodejs/main.go) for what
// `pulumi preview/up/destroy/refresh/install/about` need for a Node.js (TypeScript) program:
// it runs `node <@pulumi/pulumi>/cmd/run ...` (the entry point shipped in the npm package),
// reports the resource plugins declared by the installed npm packages and installs
// dependencies with the package manager of the SDK's nodejs/npm package.
// Code generation, policy packs and plugins written in Node.js are not supported.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"sparks/toolchain/pulumi/internal/provutil"
)

// engineHealthInterval is how often upstream polls the engine's gRPC health service.
const engineHealthInterval = 5 * time.Minute

func main() {
	// Same flags as upstream; the glog flags the engine passes (-v, --logtostderr) are registered
	// on flag.CommandLine by the SDK's logging package.
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	runtimeName := flag.String("runtime", "nodejs",
		"Specify the runtime to use for running TypeScript programs, defaults to `nodejs`")
	showVersion := flag.Bool("version", false, "Print the current plugin version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		os.Exit(0)
	}
	logging.InitLogging(false, 0, false)

	var engineAddress string
	if flag.NArg() > 0 {
		engineAddress = flag.Arg(0)
	}
	if *runtimeName != "nodejs" {
		// Upstream also accepts "bun"; this stand-in runs Node.js only.
		cmdutil.Exit(fmt.Errorf("unsupported runtime: %s", *runtimeName))
	}

	host := newLanguageHost(engineAddress, *tracing)

	// SIGINT or a failed engine health check stop the server gracefully (as upstream): in-flight
	// RPCs finish first, then main returns.
	stopServing := make(chan bool)
	stop := sync.OnceFunc(func() { close(stopServing) })
	sigCtx, sigCancel := signal.NotifyContext(context.Background(), os.Interrupt)
	go func() {
		<-sigCtx.Done()
		sigCancel() // a second SIGINT kills the process
		stop()
	}()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(sigCtx, engineAddress, engineHealthInterval, sigCancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check host RPC server: %w", err))
		}
	}
	// Not upstream: the engine's stdin pipe closes the moment the engine dies, so stop the
	// program and exit then instead of waiting up to 5 minutes for the health check.
	provutil.ExitWhenEngineGone(host.stopPrograms)

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stopServing,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	tracing string

	mu            sync.Mutex
	engineAddress string

	// cancelCtx is done once the engine sends Cancel: running programs are interrupted and
	// later Runs fail to start (as upstream's host.cancelCtx).
	cancelCtx context.Context
	cancel    context.CancelFunc
	// running counts the programs started by Run that have not exited yet; idle, when set, is
	// closed once running drops to zero.
	running int
	idle    chan struct{}
}

func newLanguageHost(engineAddress, tracing string) *languageHost {
	ctx, cancel := context.WithCancel(context.Background())
	return &languageHost{engineAddress: engineAddress, tracing: tracing, cancelCtx: ctx, cancel: cancel}
}

func (h *languageHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// stopPrograms interrupts every running program (SIGINT, then SIGKILL after programStopDelay)
// and waits until they have exited.
func (h *languageHost) stopPrograms() {
	h.cancel()
	h.mu.Lock()
	if h.running == 0 {
		h.mu.Unlock()
		return
	}
	if h.idle == nil {
		h.idle = make(chan struct{})
	}
	idle := h.idle
	h.mu.Unlock()
	<-idle
}

// programStarted and programExited keep the count stopPrograms waits on.
func (h *languageHost) programStarted() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running++
}

func (h *languageHost) programExited() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running--
	if h.running == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// Handshake records the engine address and, as upstream, starts a health check of the engine
// that stops the server when the engine stops answering.
func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engineAddress = req.GetEngineAddress()
	h.mu.Unlock()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	go func() {
		<-ctx.Done()
		cancel()
	}()
	if err := rpcutil.Healthcheck(ctx, req.GetEngineAddress(), engineHealthInterval, cancel); err != nil {
		return nil, fmt.Errorf("could not start health check host RPC server: %w", err)
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// GetPluginInfo reports the version of the Pulumi SDK this host is built with, as upstream
// (toolchain/bootstrap sets it to the CLI version at link time).
func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// Cancel interrupts the running program (upstream: host.cancelFunc()).
func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}
