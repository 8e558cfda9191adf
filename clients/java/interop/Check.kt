// The Java client from Kotlin: the builder with a lambda for the clock, an
// offline file taken at start, the verdict's fields, a listener. Run by
// clients/java/build.sh when kotlinc is installed; the arguments are the
// conformance suite's pinned key, token, newer document (base64) and time.
import dev.tessera.client.Client
import java.nio.file.Files
import java.util.Base64

fun main(args: Array<String>) {
    val (key, token, document, at) = args
    val dir = Files.createTempDirectory("tessera-kotlin-")
    val file = dir.resolve("license.paseto")
    Files.write(file, Base64.getDecoder().decode(document))
    val client = Client.builder().publicKey(key).token(token).stateDir(dir).offlineFile(file)
        .clock { at.toLong() }.watch(false).build()
    val seen = mutableListOf<String>()
    client.onChange { v -> seen.add(v.state) }
    client.start()
    val v = client.verdict()
    check(v.state == "valid" && v.revision == 6L) { "verdict: ${v.state} ${v.revision}" }
    check(client.hasFeature("sso") && !client.hasFeature("nope")) { "features: ${v.features}" }
    check(seen == listOf("valid")) { "listener: $seen" }
    client.close()
    println("ok   usable from Kotlin")
}
