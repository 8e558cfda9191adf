;; The Java client from Clojure: the builder, a reified clock, an offline
;; file taken at start, the verdict's fields. Run by clients/java/build.sh
;; when clojure is installed; the arguments are the conformance suite's
;; pinned key, token, newer document (base64) and time.
(import '[dev.tessera.client Client]
        '[java.nio.file Files OpenOption]
        '[java.nio.file.attribute FileAttribute]
        '[java.util Base64]
        '[java.util.function LongSupplier])

(let [[pinned token document at] *command-line-args*
      dir (Files/createTempDirectory "tessera-clojure-" (make-array FileAttribute 0))
      file (.resolve dir "license.paseto")
      _ (Files/write file (.decode (Base64/getDecoder) ^String document) (make-array OpenOption 0))
      client (-> (Client/builder)
                 (.publicKey pinned)
                 (.token token)
                 (.stateDir dir)
                 (.offlineFile file)
                 (.clock (reify LongSupplier (getAsLong [_] (Long/parseLong at))))
                 (.watch false)
                 (.build)
                 (.start))
      v (.verdict client)]
  (when-not (and (= "valid" (.-state v)) (= 6 (.-revision v)))
    (throw (ex-info "wrong verdict" {:state (.-state v) :revision (.-revision v)})))
  (when-not (and (.hasFeature client "sso") (not (.hasFeature client "nope")))
    (throw (ex-info "wrong features" {:features (.-features v)})))
  (.close client)
  (println "ok   usable from Clojure"))
