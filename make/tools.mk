# Pinned tools and a local Kubernetes control plane for integration tests.
# Included by the root Makefile.
#
#   make tools          build what is missing into .tools/bin (cached per tool
#                       module hash in $ECOMMERCE_TOOLS_CACHE, default
#                       ~/.cache/ecommerce-platform/tools); TOOLS="pulumi provider"
#                       builds only those
#   make cluster-up     start etcd, kube-apiserver, controller-manager, scheduler
#                       and kwok on free loopback ports; kubeconfig: .cluster/kubeconfig
#   make cluster-down   stop them (KEEP_STATE=1 keeps .cluster/)

TOOLS_MK_ROOT := $(patsubst %/,%,$(dir $(abspath $(dir $(lastword $(MAKEFILE_LIST))))))
TOOLS ?=

.PHONY: tools cluster-up cluster-down

tools:
	bash $(TOOLS_MK_ROOT)/scripts/tools.sh $(TOOLS)

cluster-up:
	bash $(TOOLS_MK_ROOT)/scripts/cluster-up.sh

cluster-down:
	bash $(TOOLS_MK_ROOT)/scripts/cluster-down.sh
