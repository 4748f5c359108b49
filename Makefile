# tetriserve - Makefile
#
#   make              build ./tetriserve (and the cuda backend when nvcc is found;
#                     NVCC_ARCH="80 90" picks the SMs, CUDA=0 leaves it out)
#   make test         build and run the test suite (tests/; the cuda backend's
#                     host logic on CPU stand-ins for the GPU and NCCL)
#   make test-gpu     the GPU tests (kernels vs CPU twins, the DiT step and
#                     SP equivalence over NCCL, run/profile end to end);
#                     each prints "skip: ..." without a GPU
#   make SAN=1 test   the same under AddressSanitizer + UBSan (objects in build-san/)
#   make bench        print the benchmark figures recorded in README.md
#   make V=1          show full command lines
#
# Host code is C11 with warnings as errors. The scheduler, the simulator and
# everything they include build with plain $(CC), never with MPI, CUDA or NCCL
# include paths: only the sources in MPI_SRCS see mpi.h.

CC      ?= cc
MPICC   ?= mpicc
OPT     ?= -O2
PYTHON  ?= /usr/bin/python3

ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -fno-omit-frame-pointer
SANFLAGS:= -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS:=
endif

ifneq ($(V),1)
Q := @
E := @printf '  %-6s %s\n'
else
Q :=
E := @true
endif

# ---- Dependencies: a missing one stops the build with the Debian package to install.
need_pc = $(if $(shell pkg-config --exists $(1) 2>/dev/null && echo y),,$(error missing $(1) (pkg-config): install the Debian package $(2), e.g. 'sudo apt-get install $(2)', or run ./scripts/setup.sh))
ifeq ($(filter clean,$(MAKECMDGOALS)),)
$(if $(shell command -v pkg-config 2>/dev/null),,$(error pkg-config not found: install the Debian package pkg-config))
$(call need_pc,hdf5-serial,libhdf5-dev)
$(call need_pc,gsl,libgsl-dev)
$(call need_pc,openblas,libopenblas-dev)
$(if $(shell command -v $(MPICC) 2>/dev/null),,$(error $(MPICC) not found: install the Debian packages openmpi-bin libopenmpi-dev))
endif

HDF5_CFLAGS := $(shell pkg-config --cflags hdf5-serial 2>/dev/null)
HDF5_LIBS   := $(shell pkg-config --libs hdf5-serial 2>/dev/null)
GSL_CFLAGS  := $(shell pkg-config --cflags gsl 2>/dev/null)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
# GSL's BLAS calls bind to OpenBLAS because it is a direct dependency of the
# executable (see ../shared/TOOLCHAIN.md); --no-as-needed keeps it there.
LIBS        := $(HDF5_LIBS) -lgsl -Wl,--no-as-needed -lopenblas -Wl,--as-needed -lm

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wvla -Wno-format-truncation
# (-Wno-format-truncation: messages are cut at TS_ERR_MAX on purpose.)
CFLAGS_ALL := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) -g $(WARN) $(SANFLAGS) -MMD -MP \
           -I$(BUILD) -Isrc -Ikernels $(HDF5_CFLAGS) $(GSL_CFLAGS) $(BLAS_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

# ---- Sources
MPI_SRCS  := $(wildcard src/mpi_*.c)
CORE_SRCS := $(filter-out src/main.c $(MPI_SRCS),$(wildcard src/*.c))
KERN_SRCS := $(wildcard kernels/*.c)
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o) $(KERN_SRCS:%.c=$(BUILD)/%.o)
MPI_OBJS  := $(MPI_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/src/main.o
LIB       := $(BUILD)/libtetriserve.a

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

ifeq ($(SAN),1)
BIN := $(BUILD)/tetriserve
else
BIN := tetriserve
endif

.PHONY: all test bench clean check-deps
all: $(BIN)

# Version: release and git commit, regenerated only when they change.
GIT_COMMIT := $(shell git describe --always --dirty --abbrev=12 --match none 2>/dev/null || echo unknown)
$(BUILD)/ts_version.h: FORCE
	@mkdir -p $(BUILD)
	@printf '#define TS_GIT_COMMIT "%s"\n' '$(GIT_COMMIT)' > $@.tmp
	@cmp -s $@.tmp $@ 2>/dev/null && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(BUILD)/src/%.o: src/%.c | $(BUILD)/ts_version.h
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/src/mpi_%.o: src/mpi_%.c | $(BUILD)/ts_version.h
	@mkdir -p $(dir $@)
	$(E) MPICC $<
	$(Q)$(MPICC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/kernels/%.o: kernels/%.c
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/src/ts_util.o: $(BUILD)/ts_version.h

$(LIB): $(CORE_OBJS) $(MPI_OBJS)
	$(E) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	$(E) LINK $@
	$(Q)$(MPICC) $(LDFLAGS_ALL) $(MAIN_OBJ) $(LIB) $(LIBS) -o $@

# ---- Tests: one cmocka program per tests/test_*.c, linked against the library.
$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(MPICC) $(CFLAGS_ALL) -Itests -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(E) LINK $@
	$(Q)$(MPICC) $(LDFLAGS_ALL) $< $(LIB) $(LIBS) -lcmocka -o $@

# The cuda backend's host logic on CPU stand-ins for the device
# (tests/fake_cuda.c), in every build, CUDA=0 included: kernels/ts_dit_cuda.c
# compiled again with TS_HAVE_CUDA=1 and linked before the library, whose
# real launchers (if any) are then never pulled in.
FAKE_DIR  := $(BUILD)/tests/fake
FAKE_OBJS := $(FAKE_DIR)/fake_cuda.o $(FAKE_DIR)/ts_dit_cuda.o
$(FAKE_DIR)/fake_cuda.o: tests/fake_cuda.c
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -DTS_HAVE_CUDA=1 -Itests -c $< -o $@
$(FAKE_DIR)/ts_dit_cuda.o: kernels/ts_dit_cuda.c
	@mkdir -p $(dir $@)
	$(E) CC $< [fake device]
	$(Q)$(CC) $(CFLAGS_ALL) -DTS_HAVE_CUDA=1 -c $< -o $@
$(BUILD)/tests/test_dit_cuda_host.o: CFLAGS_ALL += -DTS_HAVE_CUDA=1
$(BUILD)/tests/test_dit_cuda_host: $(BUILD)/tests/test_dit_cuda_host.o $(FAKE_OBJS) $(LIB)
	$(E) LINK $@
	$(Q)$(MPICC) $(LDFLAGS_ALL) $< $(FAKE_OBJS) $(LIB) $(LIBS) -lcmocka -lpthread -o $@

# NCCL's stand-in (tests/fake_nccl.c, MPI on host memory) and the gates of
# src/mpi_gpu.c compiled for the stand-in device, for the GPU test programs
# themselves (a broken check is found here, not on the first GPU machine)
# and for tetriserve_fake: the executor and the profiler with their cuda
# paths on the stand-ins (tests/test_cuda_fake.sh).
FAKE_MPI_OBJS := $(FAKE_DIR)/fake_nccl.o $(FAKE_DIR)/mpi_gpu.o
$(FAKE_DIR)/fake_nccl.o: tests/fake_nccl.c
	@mkdir -p $(dir $@)
	$(E) MPICC $< [fake NCCL]
	$(Q)$(MPICC) $(CFLAGS_ALL) -DTS_HAVE_CUDA=1 -Itests -c $< -o $@
$(FAKE_DIR)/mpi_%.o: src/mpi_%.c | $(BUILD)/ts_version.h
	@mkdir -p $(dir $@)
	$(E) MPICC $< [fake device]
	$(Q)$(MPICC) $(CFLAGS_ALL) -DTS_HAVE_CUDA=1 -c $< -o $@
FAKE_GPU_TESTS := $(BUILD)/tests/gpu_test_kernels_fake $(BUILD)/tests/gpu_test_dit_fake
$(FAKE_DIR)/gpu_test_%.o: tests/gpu_test_%.c
	@mkdir -p $(dir $@)
	$(E) CC $< [fake device]
	$(Q)$(MPICC) $(CFLAGS_ALL) -DTS_HAVE_CUDA=1 -Itests -c $< -o $@
$(BUILD)/tests/gpu_test_%_fake: $(FAKE_DIR)/gpu_test_%.o $(FAKE_MPI_OBJS) $(FAKE_OBJS) $(LIB)
	$(E) LINK $@
	$(Q)$(MPICC) $(LDFLAGS_ALL) $< $(FAKE_MPI_OBJS) $(FAKE_OBJS) $(LIB) $(LIBS) -o $@
FAKE_BIN := $(BUILD)/tests/tetriserve_fake
$(FAKE_BIN): $(MAIN_OBJ) $(FAKE_DIR)/mpi_run.o $(FAKE_DIR)/mpi_profile.o $(FAKE_MPI_OBJS) $(FAKE_OBJS) $(LIB)
	$(E) LINK $@
	$(Q)$(MPICC) $(LDFLAGS_ALL) $(filter %.o,$^) $(LIB) $(LIBS) -o $@
.SECONDARY: $(FAKE_DIR)/gpu_test_kernels.o $(FAKE_DIR)/gpu_test_dit.o $(FAKE_DIR)/mpi_run.o \
            $(FAKE_DIR)/mpi_profile.o $(FAKE_DIR)/mpi_gpu.o

# (gpu_test_dit_fake calls MPI: tests/test_cuda_fake.sh runs it, where Open
# MPI's own allocations are not counted as leaks by the sanitizer pass.)
test: $(BIN) $(TEST_BINS) $(FAKE_GPU_TESTS) $(FAKE_BIN)
	$(Q)TS_BIN=$(abspath $(BIN)) TS_BUILD=$(BUILD) ./tests/run.sh $(TEST_BINS) \
	    $(filter-out %/gpu_test_dit_fake,$(FAKE_GPU_TESTS))

BENCH_BINS := $(BUILD)/tests/bench_decide $(BUILD)/tests/bench_ctrl $(BUILD)/tests/bench_noise

$(BUILD)/tests/bench_%: $(BUILD)/tests/bench_%.o $(LIB)
	$(E) LINK $@
	$(Q)$(MPICC) $(LDFLAGS_ALL) $< $(LIB) $(LIBS) -o $@

bench: $(BIN) $(BENCH_BINS)
	$(Q)TS_BUILD=$(BUILD) ./scripts/bench.sh

# ---- CUDA backend (kernels/*.cu: the cuda twins of kernels/ts_kernels_cpu.c
# and the cuBLAS GEMM). Built when nvcc is found; `make CUDA=0` disables it.
#   NVCC_ARCH="80 90"  SM versions to build SASS for; PTX is added for the last
#                      one (so newer GPUs can JIT). CUDA 13 has nothing below 75.
# The objects go into the library; nothing outside kernels/ and src/ts_dit.*
# includes CUDA headers, and a test only links cudart/cuBLAS/NCCL when it uses
# them (--as-needed). TS_HAVE_CUDA=1 tells C files the launchers exist.
NVCC      ?= nvcc
CUDA_HOME ?= /usr/local/cuda
NVCC_ARCH ?= 80 90
CUDA_ON   :=
ifeq ($(CUDA),0)
CUDA_WHY  := disabled (CUDA=0)
else ifneq ($(shell command -v $(NVCC) 2>/dev/null),)
CUDA_ON   := 1
else
CUDA_WHY  := disabled (no nvcc)
endif
ifeq ($(CUDA_ON),1)
NVCC_VERSION := $(shell $(NVCC) --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
NVCC_GENCODE := $(foreach a,$(NVCC_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
                -gencode arch=compute_$(lastword $(NVCC_ARCH)),code=compute_$(lastword $(NVCC_ARCH))
NVCC_FLAGS   := -O2 -g -std=c++17 $(NVCC_GENCODE) -Xcompiler -Wall,-Wextra,-Werror \
                -DOMPI_SKIP_MPICXX -Isrc -Ikernels -MMD -MP $(NVCCFLAGS)
CUDA_SRCS    := $(wildcard kernels/*.cu)
CUDA_OBJS    := $(CUDA_SRCS:%.cu=$(BUILD)/%.o)
CUDA_WHY     := enabled (nvcc $(NVCC_VERSION), $(addprefix sm_,$(NVCC_ARCH)))
CFLAGS_ALL   += -DTS_HAVE_CUDA=1
LIBS         += -L$(CUDA_HOME)/lib64 -lcudart -lcublas -lnccl -lstdc++
$(LIB): $(CUDA_OBJS)
$(BUILD)/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(E) NVCC $<
	$(Q)$(NVCC) $(NVCC_FLAGS) -c $< -o $@
# NCCL over MPI (src/mpi_nccl.c, empty without TS_HAVE_CUDA): the only C
# file that sees nccl.h/cuda_runtime.h, as system headers (nccl.h is not
# -Wstrict-prototypes clean).
$(BUILD)/src/mpi_nccl.o: CFLAGS_ALL += -isystem $(CUDA_HOME)/include
endif
# Objects whose content depends on TS_HAVE_CUDA are rebuilt when the backend
# is switched on or off (make CUDA=0 then make).
CUDA_FLAG_OBJS := $(BUILD)/kernels/ts_dit_cuda.o $(BUILD)/src/mpi_nccl.o $(BUILD)/src/mpi_gpu.o $(BUILD)/src/mpi_run.o \
                  $(BUILD)/src/mpi_profile.o $(BUILD)/tests/gpu_test_dit.o
$(BUILD)/cuda_on.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CUDA_ON)' > $@.tmp
	@cmp -s $@.tmp $@ 2>/dev/null && rm -f $@.tmp || mv $@.tmp $@
$(CUDA_FLAG_OBJS): $(BUILD)/cuda_on.stamp
ifeq ($(MAKELEVEL)$(filter clean,$(MAKECMDGOALS)),0)
$(info cuda backend: $(CUDA_WHY))
endif

# test-gpu, on a machine with GPUs (without one each part prints "skip: ..."
# and succeeds):
#   gpu_test_kernels  every CUDA kernel against its CPU twin (bf16 tolerances)
#   gpu_test_dit      the GPU step against ts_dit_step at degree 1, then at
#                     degree 2 over NCCL under mpirun -np 2 with the
#                     SP-equivalence test (degrees 1,2,2,1,2 vs 1 vs CPU)
#   test_cuda_fake.sh with TS_CUDA_REAL=1: `tetriserve run/profile --backend
#                     cuda` end to end (needs 2 GPUs, some parts 3 or 4)
.PHONY: test-gpu
TS_MPIRUN_ENV := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
                 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
ifeq ($(CUDA_ON),1)
test-gpu: $(BIN) $(BUILD)/tests/gpu_test_kernels $(BUILD)/tests/gpu_test_dit
	$(Q)OPENBLAS_NUM_THREADS=1 ./$(BUILD)/tests/gpu_test_kernels
	$(Q)$(TS_MPIRUN_ENV) ./$(BUILD)/tests/gpu_test_dit
	$(Q)$(TS_MPIRUN_ENV) mpirun -np 2 ./$(BUILD)/tests/gpu_test_dit
	$(Q)TS_CUDA_REAL=1 TS_BIN=$(abspath $(BIN)) TS_BUILD=$(BUILD) bash tests/test_cuda_fake.sh
else
test-gpu:
	@echo "test-gpu: skipped, cuda backend $(CUDA_WHY)"
endif
# ---- end CUDA backend

clean:
	rm -rf build build-san tetriserve

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
