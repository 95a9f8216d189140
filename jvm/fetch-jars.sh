#!/usr/bin/env bash
# Resolve one jar set (core | s3) from Maven Central into $JARS_DIR/<set>, keeping only the
# jars pyspark does not already bundle (same artifact name in pyspark/jars = duplicate).
# Idempotent: a stamp file holding the pom's checksum makes a second run a no-op.
set -euo pipefail
set_name=${1:?usage: fetch-jars.sh core|s3}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
jars_dir=${JARS_DIR:-$here/../.jars}
out="$jars_dir/$set_name"
pom="$here/$set_name/pom.xml"
sum=$(sha256sum "$pom" | cut -d' ' -f1)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$sum" ]; then
  exit 0
fi
pyspark_jars=$("$python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
echo "fetching $set_name jars with Maven (cached in ~/.m2 after the first time)..."
mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$staging"
rm -rf "$out"
mkdir -p "$out"
for jar in "$staging"/*.jar; do
  base=$(basename "$jar")
  artifact=$(echo "$base" | sed -E 's/-[0-9][^-]*(-[0-9]+)?\.jar$//')
  # shims is RoaringBitmap 0.9's helper; Spark's RoaringBitmap 1.x does not need it.
  # commons-logging clashes with the jcl-over-slf4j bridge Spark ships.
  case "$artifact" in shims|commons-logging) continue ;; esac
  if compgen -G "$pyspark_jars/${artifact}-[0-9]*.jar" > /dev/null; then
    continue
  fi
  cp "$jar" "$out/"
done
echo "$sum" > "$out/.stamp"
echo "jars in $out:"; ls "$out"
