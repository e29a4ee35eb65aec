{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fexceptions"],
    "cflags_cc!": ["-fno-exceptions"]
  },
  "targets": [
    {
      "target_name": "berth",
      "sources": ["addon/binding.cc", "addon/clone.cc", "addon/plan_codec.cc", "addon/layer.cc", "addon/codec.cc", "addon/userns.cc", "addon/netlink.cc", "addon/seccomp.cc"],
      "libraries": ["-lseccomp"],
      "conditions": [
        ["<!(test -f /usr/include/isa-l/igzip_lib.h && echo 1 || echo 0)==1", {
          "defines": ["BERTH_HAVE_ISAL"],
          "libraries": ["-ldl"]
        }]
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "ldflags": ["-Wl,-z,now"]
    },
    {
      "target_name": "berth-init",
      "type": "executable",
      "sources": ["addon/init.cc", "addon/executor.cc", "addon/plan_codec.cc"],
      "ldflags": ["-static", "-s"]
    },
    {
      "target_name": "berth-docker-init",
      "type": "executable",
      "sources": ["addon/docker-init.cc"],
      "ldflags": ["-static", "-s"]
    }
  ]
}
