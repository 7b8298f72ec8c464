# freeair build. `make` builds build/libfreeair.a and build/freeair;
# `make test` runs every test; `make check` runs them under ASan+UBSan;
# `make fuzz` builds and briefly runs the libFuzzer targets.
#
# Sources are found by wildcard, one folder per layer of the architecture:
# core (status, logging), engine (graph, executor, oneDNN backend, weights),
# models, data (DICOM, images, manifest, cache, synthetic cohort), train,
# eval, serve, cli.

BUILD    ?= build
CC       ?= cc
CXX      ?= c++
OPT      ?= -O2
SAN      ?=
PKGS     := dcmtk libopenjp2 libpng libjpeg sqlite3 zlib libmicrohttpd ompi-c
WARN     := -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS))
CFLAGS   += -std=c11 $(OPT) -g $(WARN) -fopenmp $(SAN)
CXXFLAGS += -std=c++17 $(OPT) -g $(WARN) -fopenmp $(SAN)
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -ldnnl -lm -lpthread
LDFLAGS  += -fopenmp $(SAN)

LAYERS   := core engine models data train eval serve
LIB_C    := $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.c))
LIB_CXX  := $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.cpp))
LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/obj/%.o) $(LIB_CXX:%.cpp=$(BUILD)/obj/%.o)
CLI_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard src/cli/*.c))
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/common/*.c))
# Helper programs that integration tests drive with arguments (not run alone).
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all test check fuzz clean bench
all: $(BUILD)/freeair $(TEST_BIN) $(TOOL_BIN)

$(BUILD)/libfreeair.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/freeair: $(CLI_OBJ) $(BUILD)/libfreeair.a
	$(CXX) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libfreeair.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(TEST_COMMON) $(BUILD)/libfreeair.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) -o $@ $< $(TEST_COMMON) $(BUILD)/libfreeair.a $(LDFLAGS) $(LDLIBS) -lstdc++

$(BUILD)/tools/%: tests/tools/%.c $(TEST_COMMON) $(BUILD)/libfreeair.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) -o $@ $< $(TEST_COMMON) $(BUILD)/libfreeair.a $(LDFLAGS) $(LDLIBS) -lstdc++

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c -o $@ $<

test: all
	FREEAIR_BUILD=$(BUILD) tests/run.sh

check:
	$(MAKE) BUILD=build-san OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	FREEAIR_BUILD=build-san FREEAIR_SANITIZE=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh

fuzz:
	tests/fuzz/run.sh

bench: all
	bench/run.sh

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
