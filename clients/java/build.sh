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
# From Kotlin and Clojure (Debian's kotlin and clojure packages), when they
# are installed: the builder, a lambda/reified clock, an offline file, the
# verdict, a listener.
interop_args=$(python3 - <<'PY'
import calendar, datetime, json
d = json.load(open("../../tests/conformance/cases.json"))
c = next(c for c in d["cases"] if c["name"] == "document/newer")
at = calendar.timegm(datetime.datetime.strptime(c["offer"]["at"], "%Y-%m-%dT%H:%M:%SZ").timetuple())
print(d["keys"][0], d["token"], c["offer"]["document_b64"], at)
PY
)
if command -v kotlinc >/dev/null; then
  kotlinc interop/Check.kt -cp "$out/tessera-client.jar" -d "$out/kotlin" 2>&1 | { grep -v "^OpenJDK.*-Xverify:none" || true; }
  # kotlin's own runner hides the java.net.http module: plain java instead.
  java -cp "$out/kotlin:$out/tessera-client.jar:/usr/share/java/kotlin-stdlib.jar" CheckKt $interop_args
else
  echo "skipped: the client from Kotlin (apt-get install kotlin)"
fi
if command -v clojure >/dev/null; then
  clojure -cp "$out/tessera-client.jar" interop/check.clj $interop_args
else
  echo "skipped: the client from Clojure (apt-get install clojure)"
fi
# Against a real authority, when TESSERA_BIN names the tessera binary.
if [ -n "${TESSERA_BIN:-}" ]; then
  timeout 120 java -cp "$out/main:$out/test" dev.tessera.client.ServerTest "$TESSERA_BIN"
else
  echo "skipped: the client against a real authority (set TESSERA_BIN)"
fi
