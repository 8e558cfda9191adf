#!/usr/bin/env bash
# Build and test the Java client with the JDK alone (javac, java): no Maven,
# no third-party jar. `bash clients/java/build.sh` from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
out=${OUT:-build}
rm -rf "$out"
mkdir -p "$out/main" "$out/test"
javac --release 17 -Xlint:all -Werror -d "$out/main" $(find src/main/java -name '*.java')
javac --release 17 -Xlint:all -Werror -cp "$out/main" -d "$out/test" $(find src/test/java -name '*.java')
jar --create --file "$out/tessera-client.jar" -C "$out/main" .
java -cp "$out/main:$out/test" dev.tessera.client.ConformanceTest ../../tests/conformance/cases.json
java -cp "$out/main:$out/test" dev.tessera.client.MeterTest
# The hostile-server cases, against a fake authority in the test process.
timeout 300 java -cp "$out/main:$out/test" dev.tessera.client.HostileTest
# Against a real authority, when TESSERA_BIN names the tessera binary.
if [ -n "${TESSERA_BIN:-}" ]; then
  timeout 120 java -cp "$out/main:$out/test" dev.tessera.client.ServerTest "$TESSERA_BIN"
else
  echo "skipped: the client against a real authority (set TESSERA_BIN)"
fi
